"""Only for ``session_store_sdk.pth``: the metadata is in pyproject.toml.

setuptools installs package data inside packages and ``data_files`` under the environment's prefix, neither of
which is where Python's ``site`` reads ``.pth`` files; so ``build_py`` copies the file to the top of the build
folder, and the wheel puts it at the top of site-packages, beside ``session_store_sdk_hook.py``.
"""

from __future__ import annotations

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

PTH = "session_store_sdk.pth"


class BuildPyWithPth(build_py):
    def run(self) -> None:
        super().run()
        self.copy_file(str(Path(__file__).with_name(PTH)), str(Path(self.build_lib) / PTH))

    def get_outputs(self, include_bytecode: bool = True) -> list[str]:
        return [*super().get_outputs(include_bytecode), str(Path(self.build_lib) / PTH)]


setup(cmdclass={"build_py": BuildPyWithPth})
