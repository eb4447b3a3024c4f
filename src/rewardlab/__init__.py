"""rewardlab: train, diagnose and evaluate reward models for LLM alignment.

The names a notebook user needs, loaded lazily (``import rewardlab`` imports none of torch,
transformers or the rest until a name is used)::

    import rewardlab as rl

    rm = rl.load_model("runs/demo/model")              # a trained reward model (Critic-RM too)
    rm.score(["What is 2+2?"], ["4"])                     # rewards, one per (prompt, response)
    summary = rl.train_model(rl.load_config("configs/minilm_hh.yaml", ["train.max_steps=10"]))
    ev = rl.evaluate(["runs/demo/model"], data=["pairs.jsonl"])   # ev.results; rl.write_outputs(ev, dir)
    reward_fn = rl.RubricReward(rl.load_rubric("rubric.yaml"), "focal", num_generations=8)  # TRL GRPO reward

Everything else lives in the subpackages (``rewardlab.models``, ``rewardlab.objectives``,
``rewardlab.heads``, ...; docs/architecture.md).
"""

from __future__ import annotations

__version__ = "0.1.0"

# public name -> the module that defines it (or (module, name there))
_API = {
    # load a model and score
    "load_model": "rewardlab.critic.load",
    "RewardModel": "rewardlab.models.reward_model",
    "load_preferences": "rewardlab.data.readers",
    "sample_path": "rewardlab.data.readers",
    "PreferenceTable": "rewardlab.data.table",
    # train from a config
    "load_config": "rewardlab.config",
    "parse_config": "rewardlab.config",
    "RunConfig": "rewardlab.config",
    "train_model": "rewardlab.train.ensemble",  # one model or an ensemble (train.ensemble), as the config says
    # evaluate
    "evaluate": "rewardlab.eval.runner",
    "write_outputs": "rewardlab.eval.runner",
    # rewards for RL loops
    "RubricReward": "rewardlab.rubric.reward",
    "load_rubric": "rewardlab.rubric.spec",
    "parse_rubric": "rewardlab.rubric.spec",
    "RemoteReward": "rewardlab.serve.client",
    # errors a caller may catch
    "RewardlabError": "rewardlab.errors",
    "ConfigError": "rewardlab.errors",
    "DataError": "rewardlab.errors",
}

__all__ = sorted(_API) + ["__version__"]


def __getattr__(name: str):
    where = _API.get(name)
    if where is None:
        raise AttributeError(f"module 'rewardlab' has no attribute {name!r}")
    import importlib  # here, not at the top: `import rewardlab` stays as cheap as before the API

    module, attr = where if isinstance(where, tuple) else (where, name)
    value = getattr(importlib.import_module(module), attr)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_API))
