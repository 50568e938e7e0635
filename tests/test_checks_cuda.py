"""CUDA/cuDNN findings. The H100 capture has only CUDA 13 libraries, so a TF 2.21 (CUDA 12) finds none of
its .so.12 libraries there: the real probe over that root gives the missing-library case."""

from __future__ import annotations

from checks_support import H100, codes, gpus_fixture, h100, no_gpu_facts, one, tensorflow

from envdoctor.checks import Severity
from envdoctor.facts import CudaToolkit, CudnnInstall, DeepFacts, LibraryResolution, NvidiaWheel
from envdoctor.probes import ProbeContext
from envdoctor.probes import cuda as cuda_probe

SITE = "/opt/venv/lib/python3.11/site-packages"


def _h100_tf(version: str = "2.21.0"):
    facts = h100("idle")
    facts.tensorflow = tensorflow(version)
    return facts


def test_missing_libraries_on_the_real_h100_root():
    facts = _h100_tf()
    cuda_probe.probe(ProbeContext(root=H100 / "idle" / "root", env={}), facts)
    f = one(facts, "cuda.library-missing")
    assert f.severity is Severity.ERROR
    assert "libcudart.so.12" in f.title and "libcudnn.so.9" in f.title
    assert f.fix == "/home/user/venv/bin/python -m pip install 'tensorflow[and-cuda]==2.21.0'"
    assert "cuda.ok" not in codes(facts)


def test_missing_library_without_gpu_is_not_a_finding():
    facts = no_gpu_facts()
    facts.tensorflow = tensorflow("2.21.0")
    facts.cuda.tf_libraries = [LibraryResolution("cudart", "libcudart.so.12", "missing")]
    assert not any(c.startswith("cuda.") for c in codes(facts))


def test_old_tf_without_and_cuda_extra_names_toolkit_versions():
    facts = _h100_tf("2.12.0")
    facts.gpus = gpus_fixture("v100-busy.json")
    facts.cuda.tf_libraries = [LibraryResolution("cudart", "libcudart.so.11.0", "missing")]
    fix = one(facts, "cuda.library-missing").fix
    assert "\n# install CUDA 11.8 and cuDNN 8.6 " in fix and "and-cuda pip extra" in fix and "?" not in fix


def test_old_tf_in_conda_gets_its_release_s_conda_recipe():
    # TensorFlow's own 2.12 guide: conda's cudatoolkit 11.8.0 plus the nvidia-cudnn-cu11 8.6 wheel.
    facts = _h100_tf("2.12.0")
    facts.gpus = gpus_fixture("v100-busy.json")
    facts.tensorflow.python_env = "conda"
    facts.tensorflow.location = "/opt/conda/envs/tf/lib/python3.10/site-packages/tensorflow"
    facts.cuda.tf_libraries = [LibraryResolution("cudart", "libcudart.so.11.0", "missing")]
    fix = one(facts, "cuda.library-missing").fix.splitlines()
    assert fix[0] == "conda install -y -p /opt/conda/envs/tf -c conda-forge cudatoolkit=11.8.0"
    assert fix[1].endswith("-m pip install nvidia-cudnn-cu11==8.6.0.163")
    assert "/opt/conda/envs/tf/etc/conda/activate.d/tensorflow-cuda.sh" in fix[3]


def test_unknown_release_takes_cuda_from_the_wheel_build_info():
    facts = _h100_tf("2.12.0")
    facts.gpus = gpus_fixture("v100-busy.json")
    facts.tensorflow.version = "2.3.4"  # before the table: build_info.py says what it was built with
    facts.tensorflow.build_info.cuda_version, facts.tensorflow.build_info.cudnn_version = "10.1", "7"
    facts.cuda.tf_libraries = [LibraryResolution("cudart", "libcudart.so.10.1", "missing")]
    fix = one(facts, "cuda.library-missing").fix
    assert "install CUDA 10.1 and cuDNN 7 " in fix and "?" not in fix


def test_library_off_loader_path():
    facts = _h100_tf()
    lib_dir = "/usr/local/cuda-12.5/targets/x86_64-linux/lib"
    facts.cuda.tf_libraries = [
        LibraryResolution("cudart", "libcudart.so.12", "off_loader_path", candidates=[f"{lib_dir}/libcudart.so.12"]),
        LibraryResolution("cublas", "libcublas.so.12", "off_loader_path", candidates=[f"{lib_dir}/libcublas.so.12"]),
    ]
    f = one(facts, "cuda.library-off-path")
    assert f.fix == (f"printf '%s\\n' {lib_dir} | sudo tee /etc/ld.so.conf.d/tensorflow-cuda.conf && sudo ldconfig")
    assert f"libcudart.so.12: on disk at {lib_dir}/libcudart.so.12 but not on the loader path" in f.evidence


def test_wheel_libraries_off_path_use_ld_library_path():
    facts = _h100_tf("2.16.1")
    cand = f"{SITE}/nvidia/cudnn/lib/libcudnn.so.8"
    facts.cuda.tf_libraries = [LibraryResolution("cudnn", "libcudnn.so.8", "off_loader_path", candidates=[cand])]
    assert one(facts, "cuda.library-off-path").fix.startswith(f"export LD_LIBRARY_PATH={SITE}/nvidia/cudnn/lib")


def test_cudnn_older_than_tf_build_from_system_library():
    facts = _h100_tf("2.18.0")  # built with cuDNN 9.3
    facts.cuda.cudnn = [CudnnInstall("/usr/include/x86_64-linux-gnu/cudnn_version_v9.h", "9.1.0", "header")]
    facts.cuda.tf_libraries = [
        LibraryResolution("cudnn", "libcudnn.so.9", "found", "/usr/lib/x86_64-linux-gnu/libcudnn.so.9", "ld.so.cache")
    ]
    f = one(facts, "cuda.cudnn-too-old")
    assert f.severity is Severity.ERROR
    assert f.title == "cuDNN 9.1.0 is older than the 9.3 TensorFlow 2.18.0 was built with"
    assert "# or upgrade the system cuDNN to ≥ 9.3" in f.fix


def test_cudnn_from_wheel_new_enough_is_ok():
    facts = _h100_tf("2.21.0")
    facts.cuda.nvidia_wheels = [
        NvidiaWheel("nvidia-cudnn-cu12", "9.3.0.75", f"{SITE}/nvidia/cudnn/lib", "cu12"),
        NvidiaWheel("nvidia-cuda-nvcc-cu12", "12.5.82"),
    ]  # [and-cuda] brings XLA's ptxas
    facts.cuda.tf_libraries = [
        LibraryResolution("cudnn", "libcudnn.so.9", "found", f"{SITE}/nvidia/cudnn/lib/libcudnn.so.9", "wheel")
    ]
    assert "cuda.cudnn-too-old" not in codes(facts)
    assert one(facts, "cuda.ok").title == "All 1 CUDA libraries TensorFlow 2.21.0 (CUDA 12.5.1) needs are found"


def test_cudnn_wheel_too_old():
    facts = _h100_tf("2.21.0")
    facts.cuda.nvidia_wheels = [NvidiaWheel("nvidia-cudnn-cu12", "9.1.0.70", f"{SITE}/nvidia/cudnn/lib", "cu12")]
    facts.cuda.tf_libraries = [
        LibraryResolution("cudnn", "libcudnn.so.9", "found", f"{SITE}/nvidia/cudnn/lib/libcudnn.so.9", "wheel")
    ]
    assert "nvidia-cudnn-cu12 9.1.0.70" in one(facts, "cuda.cudnn-too-old").evidence[0]


def test_several_toolkits_and_one_too_new_for_the_gpu():
    facts = h100("idle")
    facts.gpus = gpus_fixture("v100-busy.json")  # Volta 7.0: CUDA 13 dropped it
    facts.cuda.toolkits = [
        CudaToolkit("/usr/local/cuda-12.6", "12.6", "version.json"),
        CudaToolkit(
            "/usr/local/cuda-13.0",
            "13.0",
            "version.json",
            "/usr/local/cuda-13.0/bin/nvcc",
            ["/usr/local", "PATH"],
            active=True,
        ),
    ]
    several = one(facts, "cuda.several-toolkits")
    assert "13.0 at /usr/local/cuda-13.0 (active), found via /usr/local, PATH" in several.evidence
    drop = one(facts, "cuda.toolkit-drops-gpu")
    assert drop.severity is Severity.WARNING
    assert "GPU 0 (Tesla V100-SXM2-16GB): compute capability 7.0" in drop.evidence
    # The CUDA 12.6 toolkit installed beside it still compiles for 7.0: point builds at it.
    assert drop.fix == "export CUDA_HOME=/usr/local/cuda-12.6\nexport PATH=/usr/local/cuda-12.6/bin:$PATH"
    facts.cuda.toolkits = facts.cuda.toolkits[1:]
    assert one(facts, "cuda.toolkit-drops-gpu").fix.startswith("# install a CUDA 12.x toolkit")


def test_older_toolkit_is_the_newest_that_supports_the_oldest_gpu():
    facts = h100("idle")
    facts.gpus = gpus_fixture("theano-8400gs-titan.json")  # GeForce 8400 GS (1.1), GTX TITAN (3.5)
    facts.cuda.toolkits = [CudaToolkit("/usr/local/cuda-13.0", "13.0", "version.json", active=True)]
    fix = one(facts, "cuda.toolkit-drops-gpu").fix.splitlines()
    # CUDA 12 needs compute capability 5.0 (recipes/cuda_drivers.json): the TITAN's newest is CUDA 11.
    assert fix[0].startswith(
        "# no CUDA 11 or newer toolkit compiles for GPU 0 (GeForce 8400 GS, compute capability 1.1"
    )
    assert fix[-1] == "# install a CUDA 11.x toolkit for these GPUs and point CUDA_HOME at it"
    assert not any("CUDA 12" in line for line in fix)
    facts.gpus = [g for g in facts.gpus if g.compute_capability == "3.5"]
    facts.cuda.toolkits.append(CudaToolkit("/usr/local/cuda-11.8", "11.8", "version.json"))
    assert one(facts, "cuda.toolkit-drops-gpu").fix == (
        "export CUDA_HOME=/usr/local/cuda-11.8\nexport PATH=/usr/local/cuda-11.8/bin:$PATH"
    )
    facts.gpus = gpus_fixture("theano-8400gs-titan.json")[:1]  # only the 1.1 card: nothing to install
    assert one(facts, "cuda.toolkit-drops-gpu").fix.startswith("# no CUDA 11 or newer toolkit")


def test_toolkit_only_machine_has_an_ok_line():
    facts = h100("idle")
    facts.cuda.toolkits = [CudaToolkit("/usr/local/cuda-13.0", "13.0", "nvcc", active=True)]
    facts.cuda.cudnn = [CudnnInstall("/usr/include/x86_64-linux-gnu/cudnn_version.h", "9.14.0", "header")]
    assert one(facts, "cuda.ok").title == "CUDA toolkit 13.0 at /usr/local/cuda-13.0, cuDNN 9.14.0"


def test_cudnn_without_toolkit_still_has_a_cuda_line():
    # The real H100 capture under --root: cuDNN 9.14 headers, no toolkit directory in the captured tree.
    facts = h100("idle")
    facts.cuda.cudnn = [CudnnInstall("/usr/include/x86_64-linux-gnu/cudnn_version.h", "9.14.0", "header")]
    assert one(facts, "cuda.ok").title == "No CUDA toolkit; cuDNN 9.14.0"


def test_deep_failed_libraries():
    facts = _h100_tf()
    facts.deep = DeepFacts(returncode=0, failed_libraries=["libcudnn.so.9"])
    f = one(facts, "cuda.load-failed")
    assert "dlopen failed: libcudnn.so.9" in f.evidence


def test_xla_without_libdevice_or_ptxas():
    # tensorflow#58681 / #60790: "libdevice not found at ./libdevice.10.bc" when nothing provides nvvm/libdevice.
    facts = _h100_tf("2.21.0")
    facts.cuda.toolkits = []
    facts.cuda.nvidia_wheels = [NvidiaWheel("nvidia-cudnn-cu12", "9.3.0.75", f"{SITE}/nvidia/cudnn/lib", "cu12")]
    facts.tensorflow.distributions[0].requires_dist = ['nvidia-cuda-nvcc-cu12<13.0,>=12.5.82; extra == "and-cuda"']
    found = one(facts, "cuda.xla-tools-missing")
    assert found.severity.value == "warning" and "Keras 3" in found.title
    assert found.fix.endswith("-m pip install 'nvidia-cuda-nvcc-cu12<13.0,>=12.5.82'")
    facts.env.variables["XLA_FLAGS"] = "--xla_gpu_cuda_data_dir=/opt/cuda"
    assert "cuda.xla-tools-missing" not in codes(facts)
