"""Print constraints.txt for the packages installed in this environment (the ones storm-hf's behaviour depends on)."""

from importlib.metadata import version

PACKAGES = ("accelerate", "av", "datasets", "huggingface_hub", "numpy", "peft", "safetensors", "tokenizers", "torch",
            "torchvision", "transformers")  # fmt: skip

print("# The exact versions CI last passed with (written by `.ci/refresh-constraints`; see docs/compatibility.md).")
print("# The README's commands install through this file, so a release published tomorrow cannot break them;")
print("# setup.cfg keeps ranges, so storm-hf installs beside other pins.")
for name in PACKAGES:
    print(f"{name}=={version(name).split('+')[0]}")
