"""Renderers, redaction, snapshots and exit codes, on a Diagnosis built from real H100 values."""

from __future__ import annotations

import io
import json

from envdoctor.checks import Finding, Severity
from envdoctor.doctor import EXIT_ERRORS, EXIT_INTERNAL, EXIT_OK, Diagnosis
from envdoctor.facts import Facts, GpuFacts, GpuProcess, PythonPackage, SystemFacts, from_dict, to_dict
from envdoctor.report import human, jsonout, markdown
from envdoctor.report.redact import redact_tree, redactor

# Values from the real H100 capture (tests/fixtures/h100-firecracker/busy/nvml.json).
H100_UUID = "GPU-c1d61728-05ec-5f50-fc60-c0fc41847924"


def h100_facts() -> Facts:
    facts = Facts(
        envdoctor_version="0.1.0",
        system=SystemFacts(
            os="Linux",
            distro_id="ubuntu",
            distro_name="Ubuntu 24.04.3 LTS",
            arch="x86_64",
            python_version="3.12.3",
            hostname="gpu-node-7",
            user="alice",
            home="/home/alice",
            package_manager="apt",
        ),
    )
    facts.gpus = [
        GpuFacts(
            index=0,
            name="NVIDIA H100 80GB HBM3",
            uuid=H100_UUID,
            pci_bus_id="00000000:00:06.0",
            compute_capability="9.0",
            memory_total_bytes=85520809984,
            memory_used_bytes=6994853888,
            memory_free_bytes=78022639616,
            processes=[GpuProcess(pid=720, used_memory_bytes=6985613312)],
        )
    ]
    return facts


def findings() -> list[Finding]:
    return [
        Finding(
            "driver.ok",
            Severity.OK,
            "NVIDIA driver 580.159.04 (open kernel module), CUDA ≤ 13.0",
            ["/proc/driver/nvidia/version: 580.159.04"],
        ),
        Finding(
            "gpu.memory-in-use",
            Severity.WARNING,
            "GPU 0 already has 6.5 GiB held by 1 other process",
            [f"{H100_UUID}: pid 720 holds 6985613312 bytes"],
            'eval "$(envdoctor env --gpus 0)"',
        ),
        Finding(
            "cpu.unused-instructions", Severity.INFO, "TensorFlow does not use AVX2, FMA", [], "envdoctor build-tf"
        ),
        Finding(
            "tensorflow.missing",
            Severity.ERROR,
            "TensorFlow is not installed in /home/alice/venv",
            ["python: /home/alice/venv/bin/python on gpu-node-7"],
            "pip install tensorflow[and-cuda]",
        ),
    ]


def test_exit_codes() -> None:
    facts = h100_facts()
    assert Diagnosis(facts, findings()[:3]).exit_code == EXIT_OK
    assert Diagnosis(facts, findings()[:3], strict=True).exit_code == EXIT_ERRORS
    assert Diagnosis(facts, findings()).exit_code == EXIT_ERRORS
    crashed = Finding("envdoctor.check-failed", Severity.ERROR, "Check 'x' crashed", ["KeyError: 'a'"])
    assert Diagnosis(facts, [*findings(), crashed]).exit_code == EXIT_INTERNAL


def test_human_report_flutter_style_and_no_colour_off_terminal(monkeypatch) -> None:
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    out = io.StringIO()
    human.render(Diagnosis(h100_facts(), findings()), stream=out)
    text = out.getvalue()
    assert "\x1b[" not in text  # not a terminal: no colour
    lines = text.splitlines()
    assert any(line.startswith("[✓] NVIDIA driver — NVIDIA driver 580.159.04") for line in lines)
    assert any(line.startswith("[!] GPUs") for line in lines)
    assert any(line.startswith("[✗] TensorFlow") for line in lines)
    assert 'fix: eval "$(envdoctor env --gpus 0)"' in text  # warnings show their fix without -v
    assert "/proc/driver/nvidia/version" not in text  # OK evidence only with -v
    assert lines[-1] == "! Doctor found issues in 2 categories (1 error, 1 warning)."
    verbose = io.StringIO()
    human.render(Diagnosis(h100_facts(), findings()), verbose=True, stream=verbose)
    assert "/proc/driver/nvidia/version: 580.159.04" in verbose.getvalue()
    assert "[gpu.memory-in-use]" in verbose.getvalue()


def test_colour_on_terminal_unless_no_color(monkeypatch) -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm-256color")
    tty = Tty()
    human.render(Diagnosis(h100_facts(), findings()), stream=tty)
    assert "\x1b[" in tty.getvalue()
    monkeypatch.setenv("NO_COLOR", "1")
    tty = Tty()
    human.render(Diagnosis(h100_facts(), findings()), stream=tty)
    assert "\x1b[" not in tty.getvalue()


def test_json_document_shape() -> None:
    document = json.loads(jsonout.dumps(jsonout.diagnosis_dict(Diagnosis(h100_facts(), findings()))))
    assert set(document) == {"schema_version", "envdoctor_version", "facts", "findings", "summary"}
    assert document["summary"]["errors"] == 1 and document["summary"]["exit_code"] == EXIT_ERRORS
    assert document["facts"]["gpus"][0]["uuid"] == H100_UUID
    codes = [f["code"] for f in document["findings"]]
    assert codes.index("driver.ok") < codes.index("gpu.memory-in-use") < codes.index("tensorflow.missing")


def test_markdown_has_table_and_fenced_fixes() -> None:
    text = markdown.render(Diagnosis(h100_facts(), findings()))
    assert "| ✓ | NVIDIA driver |" in text and "| ✗ | TensorFlow |" in text
    assert "    ```bash\n    pip install tensorflow[and-cuda]\n    ```" in text


def test_redaction_scrubs_home_user_host_and_uuids_everywhere() -> None:
    facts = h100_facts()
    scrub = redactor(facts)
    document = redact_tree(jsonout.diagnosis_dict(Diagnosis(facts, findings())), scrub)
    dumped = json.dumps(document)
    for secret in ("/home/alice", "alice", "gpu-node-7", "c1d61728"):
        assert secret not in dumped
    assert "GPU-<redacted-1>" in dumped and "~/venv" in dumped and "<host>" in dumped
    assert scrub("malice and alice-x") == "malice and <user>-x"  # tokens: '-' and '_' end a name, letters do not


def test_redaction_by_token_in_any_case_with_the_short_host_name_and_addresses() -> None:
    # The hardening report: alice_dev, ALICE, the short host name and IP addresses leaked through --json, -v, --save.
    facts = h100_facts()
    facts.system.hostname = "gpu-node-7.lab.example.org"
    facts.env.variables["TF_CONFIG"] = '{"cluster": {"worker": ["10.1.2.3:2222", "[fe80::1%eth0]:2222"]}}'
    scrub = redactor(facts)
    text = "alice_dev ALICE Alice/x gpu-node-7 GPU-NODE-7.lab.example.org 192.168.0.10 2001:db8::1"
    assert scrub(text) == "<user>_dev <user> <user>/x <host> <host> <ip> <ip>"
    dumped = json.dumps(redact_tree(jsonout.diagnosis_dict(Diagnosis(facts, findings())), scrub))
    assert "10.1.2.3" not in dumped and "fe80::1" not in dumped and "gpu-node-7" not in dumped.lower()
    facts.tensorflow.related.append(PythonPackage("nvidia-curand-cu12", "10.3.6.82"))  # a version, not an address
    assert redactor(facts)("curand 10.3.6.82, host 10.3.6.83") == "curand 10.3.6.82, host <ip>"
    assert scrub("at 2026-11-26T16:49:42+00:00 on 0000:3b:00.0, std::vector") == (
        "at 2026-11-26T16:49:42+00:00 on 0000:3b:00.0, std::vector"
    )  # times, PCI ids and C++ stay


def test_redaction_scrubs_uuid_prefixes_that_cuda_visible_devices_accepts() -> None:
    facts = h100_facts()
    facts.env.variables["CUDA_VISIBLE_DEVICES"] = "GPU-c1d61728-05ec,MIG-5c1a"  # CUDA takes unique prefixes
    dumped = json.dumps(redact_tree(jsonout.diagnosis_dict(Diagnosis(facts, findings())), redactor(facts)))
    assert "c1d61728" not in dumped and "5c1a" not in dumped
    assert "GPU-<redacted-2>,MIG-<redacted-3>" in dumped
    scrub = redactor(facts)
    assert scrub("GPU-accelerated GPU-face GPU-based") == "GPU-accelerated GPU-face GPU-based"  # words stay


def test_snapshot_round_trip_is_lossless() -> None:
    facts = h100_facts()
    assert from_dict(Facts, json.loads(json.dumps(to_dict(facts)))) == facts


def _docker_root_facts() -> Facts:
    """The usual Docker user: root, HOME=/root (the reviewer's container)."""
    facts = h100_facts()
    facts.system.user, facts.system.home, facts.system.hostname = "root", "/root", "3f2a9c1b7d4e"
    facts.tensorflow.python_executable = "/root/venv/bin/python"
    return facts


def test_redacted_root_snapshot_keeps_its_keys_and_diagnoses_the_same() -> None:
    from envdoctor.doctor import diagnose

    facts = _docker_root_facts()
    redacted = redact_tree(to_dict(facts), redactor(facts))
    assert redacted["root"] == "/" and "<user>" not in json.dumps(redacted)  # 'root' is no personal data
    assert redacted["system"]["home"] == "/root" and redacted["system"]["hostname"] == "<host>"
    loaded = from_dict(Facts, json.loads(json.dumps(redacted)))
    assert [(f.code, f.severity) for f in diagnose(loaded).findings] == [
        (f.code, f.severity) for f in diagnose(facts).findings
    ]


def test_redaction_never_touches_keys_and_spares_default_accounts() -> None:
    facts = h100_facts()
    facts.system.user = "ubuntu"  # the cloud image's account, also the distro id
    facts.env.variables["ubuntu"] = "x"
    redacted = redact_tree(to_dict(facts), redactor(facts))
    assert redacted["system"]["distro_id"] == "ubuntu" and "ubuntu" in redacted["env"]["variables"]
    alice = redact_tree({"alice": "/data/alice/x"}, redactor(h100_facts()))
    assert alice == {"alice": "/data/<user>/x"}  # values are scrubbed, keys are field names


def test_header_names_the_inspected_interpreter_and_the_hint_repeats_the_options() -> None:
    facts = h100_facts()
    facts.system.python_executable = "/tmp/ux/venv/bin/python"
    facts.tensorflow.python_executable, facts.tensorflow.python_version = "/usr/bin/python3", "3.11.2"
    facts.tensorflow.python_env = "system"
    out = io.StringIO()
    human.render(Diagnosis(facts, findings()), stream=out, rerun="envdoctor check --python /usr/bin/python3")
    first, hint = out.getvalue().splitlines()[:2]
    assert first.endswith("x86_64 · inspecting /usr/bin/python3 (Python 3.11.2, system)")
    assert "3.12.3" not in first  # envdoctor's own Python is not the one diagnosed
    assert hint == "(run `envdoctor check --python /usr/bin/python3 -v` for every detail)"
    assert "inspecting /usr/bin/python3 (Python 3.11.2, system)" in markdown.render(Diagnosis(facts, findings()))


def test_snapshot_report_says_whose_machine_and_when_and_redacts_the_host() -> None:
    facts = h100_facts()
    facts.collected_at = "2025-06-01T12:00:00+00:00"
    origin = human.snapshot_origin(facts, "snap.json")
    assert origin == "from snapshot snap.json, taken on gpu-node-7 at 2025-06-01T12:00:00+00:00"
    out = io.StringIO()
    human.render(Diagnosis(facts, findings()), stream=out, scrub=redactor(facts), origin=origin)
    assert out.getvalue().splitlines()[1] == "from snapshot snap.json, taken on <host> at 2025-06-01T12:00:00+00:00"
    assert human.snapshot_origin(Facts(), "old.json") == "from snapshot old.json"  # nothing recorded: no claims
    assert f"\n{origin}\n" in markdown.render(Diagnosis(facts, findings()), origin=origin)
