"""The ``rewardlab`` command line: the Typer app and its commands, one module per command group.

Each command is one thin call into a package function; the modules beside this one hold them
(``train``, ``evaluate``, ``embed_study``, ``strength``, ``critic``, ``serve``, ``rubric``) and
``common`` what they share (consoles, ``fail``: errors on stderr with exit status 2). Registration
order is the order of ``rewardlab --help``.
"""

from __future__ import annotations

import logging
import os
import sys

from rewardlab.cli import critic, embed_study, evaluate, rubric, serve, strength, train
from rewardlab.cli.common import App, one_line_usage_errors, plain_help_types

app = App(help="Train, diagnose and evaluate reward models.", no_args_is_help=True,
          pretty_exceptions_enable=False, add_completion=False)
plain_help_types()
one_line_usage_errors()


def _quiet_libraries() -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    for name in ("transformers", "accelerate", "datasets", "httpx", "urllib3"):
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
    except ImportError:  # pragma: no cover
        pass


@app.callback()
def _main() -> None:
    _quiet_libraries()


app.command()(train.train)
app.command()(train.warm)
app.command()(evaluate.score)
app.command("eval")(evaluate.eval_)
app.command()(train.demo)
app.command()(embed_study.embed)
app.command()(embed_study.study)
app.command()(embed_study.golden)
app.command()(strength.strength)
app.command()(strength.denoise)
app.command()(critic.critique)
app.command()(serve.serve)
app.add_typer(rubric.rubric_app, name="rubric")
app.command()(rubric.grpo)


def main() -> None:  # pragma: no cover
    sys.exit(app())
