"""deepshelf-client's build: the package `deepshelf` from ../../src/deepshelf with only the modules the client
needs (tests/test_slim_client.py builds it and imports it in a fresh virtual environment without torch)."""

from setuptools import setup
from setuptools.command.build_py import build_py

# deepshelf.client imports deepshelf.tokens and nothing else of deepshelf (an import-linter contract in the
# main pyproject.toml keeps it so).
MODULES = {"__init__", "client", "tokens"}


class ClientModulesOnly(build_py):
    def find_package_modules(self, package, package_dir):
        return [m for m in super().find_package_modules(package, package_dir) if m[1] in MODULES]


setup(packages=["deepshelf"], package_dir={"deepshelf": "../../src/deepshelf"},
      cmdclass={"build_py": ClientModulesOnly})
