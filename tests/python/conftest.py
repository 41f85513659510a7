"""Fixtures for the Python module's tests (run by scripts/test.sh with PYTHONPATH=build/python)."""

import os
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared"
STORIES = SHARED / "models" / "stories260K-f32.gguf"


@pytest.fixture(scope="session")
def h2o():
    import h2o as module

    return module


@pytest.fixture(scope="session")
def model(h2o):
    return h2o.Model(str(STORIES))


@pytest.fixture(scope="session")
def cli():
    """The CLI binary of the same build (H2O_CLI overrides)."""
    path = pathlib.Path(os.environ.get("H2O_CLI", ROOT / "build" / "h2o"))
    if not path.exists():
        pytest.skip(f"CLI binary {path} not built")
    return path


@pytest.fixture(scope="session")
def story_text():
    """Held-out TinyStories text (the first paragraphs of the validation file)."""
    text = (SHARED / "data" / "tinystories-valid.txt").read_text(encoding="utf-8")
    return text[:2000]
