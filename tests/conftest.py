"""Shared pytest fixtures. Tests never touch the network: hub look-ups are switched off at import."""
import os

for _key, _value in {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "HF_EVALUATE_OFFLINE": "1",
                     "GRADIO_ANALYTICS_ENABLED": "False", "TOKENIZERS_PARALLELISM": "false"}.items():
    os.environ[_key] = _value

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def prepared_assets() -> dict:
    """The embedded default models, prepared once per session (a no-op after `make assets`): name -> row."""
    from diva import assets
    return {row["name"]: row for row in assets.prepare(verbose=False)}
