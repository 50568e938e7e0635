"""Renderers: turn a Diagnosis into human text, Markdown or JSON. They only format; they never judge."""
