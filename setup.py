"""pip install . : builds the Python module h2o._h2o with CMake (docs/python.md).

Deliberately no pyproject.toml: pip then builds in this tree with the setuptools it
already has (no isolated build environment to download), so the install works offline:

    python3 -m venv --system-site-packages .venv
    .venv/bin/pip install --no-index .

The module is built in build/ (the same directory scripts/setup.sh uses, so the library
is built once) with -DH2O_PYTHON=ON for the interpreter running this script (its base
interpreter in a virtual environment).
"""

import glob
import os
import shutil
import subprocess
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = os.path.dirname(os.path.abspath(__file__))


class CMakeBuild(build_ext):
    def build_extension(self, ext):
        build_dir = os.environ.get("H2O_BUILD_DIR", os.path.join(ROOT, "build"))
        jobs = os.environ.get("CMAKE_BUILD_PARALLEL_LEVEL", str(os.cpu_count() or 1))
        # A virtual environment's base interpreter (same headers and ABI): build/ then never
        # names a .venv that may be deleted later.
        python = getattr(sys, "_base_executable", None) or sys.executable
        subprocess.run(
            ["cmake", "-S", ROOT, "-B", build_dir, "-G", "Ninja", "-DCMAKE_BUILD_TYPE=Release",
             "-DH2O_PYTHON=ON", f"-DPYTHON_EXECUTABLE={python}"],
            check=True)
        subprocess.run(["cmake", "--build", build_dir, "--target", "h2o_python", "-j", jobs], check=True)
        built = glob.glob(os.path.join(build_dir, "python", "h2o", "_h2o*.so"))
        if len(built) != 1:
            raise RuntimeError(f"expected one built module in {build_dir}/python/h2o, found {built}")
        dest = self.get_ext_fullpath(ext.name)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        shutil.copyfile(built[0], dest)


setup(
    name="h2o",
    version="0.1.0",
    description="h2o.cpp: LLM inference with H2O KV-cache eviction",
    packages=["h2o"],
    package_dir={"": "python"},
    ext_modules=[Extension("h2o._h2o", sources=[])],
    cmdclass={"build_ext": CMakeBuild},
    python_requires=">=3.9",
    install_requires=["numpy"],
    zip_safe=False,
)
