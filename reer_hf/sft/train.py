"""DeepWriter SFT (the paper's training setup, arXiv 2509.06160): TRL's ``SFTTrainer`` on the REER data, under any
accelerate launcher.

``run_sft`` is what ``recipes/sft.py`` calls: it builds the data (``reer_hf.sft.data``), prints it and stops on
``--dry_run``, otherwise passes the model to ``SFTTrainer`` as a path string with its init kwargs (so DeepSpeed
ZeRO-3 builds it sharded), resumes from the last checkpoint in ``output_dir``, saves the model, metrics and data
report, writes the model card (``model_cards/model_card.md``) and pushes to the Hub when asked.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import sys
from pathlib import Path

from trl import SFTTrainer

from reer_hf.core.cards import render_model_card
from reer_hf.core.models import DEMO_ALIASES, TEMPLATES_DIR, resolve_model
from reer_hf.core.paper import COLUMN_NAMES, PAPER_ABLATIONS
from reer_hf.sft.config import SFTScriptArguments
from reer_hf.sft.data import build_sft_dataset_on_ranks
from reer_hf.sft.report import SFTDataReport

logger = logging.getLogger(__name__)

DEMO_BASE_MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"


def run_name(args: SFTScriptArguments) -> str:
    """The paper run ``args`` reproduces (a key of :data:`~reer_hf.core.paper.PAPER_ABLATIONS`), or ``combined
    ablations`` / ``REER data only``, which the paper does not report."""
    on = [
        name
        for name, active in (
            ("no synthetic data", args.ablation_no_synthetic),
            ("no iterative search", args.ablation_no_search),
            ("no reflection tokens", args.ablation_no_reflection),
            ("fewer long trajectories", args.ablation_length == "fewer_long"),
            ("fewer short trajectories", args.ablation_length == "fewer_short"),
            ("excluded categories", bool(args.ablation_exclude_categories)),
        )
        if active
    ]
    if len(on) > 1:
        return "combined ablations"
    if on:
        return on[0]
    return "full" if args.mix_dataset_name else "REER data only"


def paper_run(name: str) -> dict:
    """The model card's view of a paper run: what it changes, its scores under the benchmarks' full names (the card
    prints them as they are), and the paper's note; empty for a run the paper does not report."""
    run = PAPER_ABLATIONS.get(name)
    if run is None:
        return {}
    scores = {COLUMN_NAMES[code]: score for code, score in run["scores"].items()}
    return {"change": run["change"], "scores": scores, **({"note": run["note"]} if "note" in run else {})}


def recipe_path_from_argv(argv: list[str]) -> str | None:
    """The ``--config`` YAML of a command line (``TrlParser`` consumes it before the dataclasses see it)."""
    for i, arg in enumerate(argv):
        if arg == "--config" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--config="):
            return arg.split("=", 1)[1]
    return None


def resolve_chat_template_path(path: str | None) -> str | None:
    """A chat template path that works from any directory: ``reer_hf/templates/<name>.jinja`` (as the recipes write
    it, relative to the repository) or a bare ``<name>.jinja`` is found in the installed package."""
    if path is None or Path(path).is_file():
        return path
    shipped = TEMPLATES_DIR / Path(path).name
    return str(shipped) if shipped.is_file() else path


def model_init_kwargs(model_args, training_args) -> dict:
    """``from_pretrained`` kwargs for ``SFTTrainer``, as TRL's own ``sft.py`` builds them, plus ``use_cache=False``
    under gradient checkpointing (the KV cache is useless in training and conflicts with checkpointing)."""
    kwargs = {
        "revision": model_args.model_revision,
        "trust_remote_code": training_args.trust_remote_code,
        "attn_implementation": model_args.attn_implementation,
        "dtype": model_args.dtype,
        "use_cache": not training_args.gradient_checkpointing,
    }
    kwargs.update(training_args.model_init_kwargs or {})
    return kwargs


def load_sft_tokenizer(model_path: str, training_args, model_args):
    """The model's tokenizer with the recipe's chat template and end-of-turn token applied, as ``SFTTrainer`` applies
    them, so the data report measures what the trainer will see."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(
        model_path, revision=model_args.model_revision, trust_remote_code=training_args.trust_remote_code
    )
    template = training_args.chat_template_path
    if template is not None:
        if Path(template).is_file():
            tokenizer.chat_template = Path(template).read_text(encoding="utf-8")
        else:  # a tokenizer to copy the template from (SFTTrainer also adds its special tokens)
            tokenizer.chat_template = AutoTokenizer.from_pretrained(template).chat_template
    if training_args.eos_token is not None:
        if training_args.eos_token not in tokenizer.get_vocab():
            raise ValueError(f"eos_token {training_args.eos_token!r} is not in the vocabulary of {model_path}")
        tokenizer.eos_token = training_args.eos_token
    if tokenizer.chat_template is None:
        raise ValueError(
            f"{model_path} has no chat template: set chat_template_path (reer_hf/templates/chatml.jinja for base "
            "models) and eos_token (<|im_end|> with it)"
        )
    return tokenizer


def framework_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    versions = {}
    for name in ("reer-hf", "torch", "transformers", "trl", "datasets", "accelerate", "peft", "deepspeed"):
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            continue
    return versions


class ReerSFTTrainer(SFTTrainer):
    """``SFTTrainer`` whose model card is ours (``model_cards/model_card.md``): ``Trainer.push_to_hub`` and every
    checkpoint save call ``create_model_card``, which would otherwise overwrite it with TRL's."""

    reer_card_context: dict | None = None

    def create_model_card(self, model_name: str | None = None, dataset_name: str | None = None, tags=None, **kwargs):
        if self.reer_card_context is None:
            return super().create_model_card(model_name=model_name, dataset_name=dataset_name, tags=tags)
        if not self.is_world_process_zero():
            return None
        card = render_model_card(
            **self.reer_card_context,
            log_history=self.state.log_history,
            distributed=self._distributed_setup(),
            repo_id=self.hub_model_id if self.args.push_to_hub else self.args.hub_model_id,
        )
        card.save(os.path.join(self.args.output_dir, "README.md"))
        return card

    def _distributed_setup(self) -> str:
        state = self.accelerator.state
        plugin = state.deepspeed_plugin
        if plugin is not None:
            kind = f"DeepSpeed ZeRO-{plugin.zero_stage}"
        elif state.num_processes == 1:
            kind = "single process"
        else:
            kind = str(state.distributed_type.value)
        return f"{kind} on {state.num_processes} x {state.device.type}, mixed precision {state.mixed_precision}"


def _card_context(script_args, training_args, model_args, report: SFTDataReport, base_model: str) -> dict:
    recipe_yaml = None
    if script_args.reer_recipe_path and Path(script_args.reer_recipe_path).is_file():
        recipe_yaml = Path(script_args.reer_recipe_path).read_text(encoding="utf-8")
    name = run_name(script_args)
    return {
        "base_model": base_model,
        "run": {"name": name, "lora": model_args.use_peft, **paper_run(name)},
        "data": {
            "dataset_name": None if script_args.ablation_no_synthetic else script_args.dataset_name,
            "mix_dataset_name": script_args.mix_dataset_name,
            "report": report.to_dict(),
            "assistant_format": script_args.reer_assistant_format,
            "system_prompt": script_args.reer_system_prompt,
        },
        "hyperparameters": {
            "learning_rate": training_args.learning_rate,
            "lr_scheduler_type": str(
                getattr(training_args.lr_scheduler_type, "value", training_args.lr_scheduler_type)
            ),
            "num_train_epochs": training_args.num_train_epochs,
            "max_steps": training_args.max_steps,
            "per_device_train_batch_size": training_args.per_device_train_batch_size,
            "gradient_accumulation_steps": training_args.gradient_accumulation_steps,
            "global_batch_size": training_args.per_device_train_batch_size
            * training_args.gradient_accumulation_steps
            * training_args.world_size,
            "max_length": training_args.max_length,
            "bf16": training_args.bf16,
            "gradient_checkpointing": training_args.gradient_checkpointing,
            "assistant_only_loss": training_args.assistant_only_loss,
            "chat_template_path": training_args.chat_template_path,
            "eos_token": training_args.eos_token,
            "seed": training_args.seed,
            "use_peft": model_args.use_peft,
            **({"lora_r": model_args.lora_r, "lora_alpha": model_args.lora_alpha} if model_args.use_peft else {}),
        },
        "recipe_yaml": recipe_yaml,
        "recipe_path": script_args.reer_recipe_path,
        "license": script_args.reer_model_license,
        "project_url": script_args.reer_project_url,
        "command": " ".join(shlex.quote(a) for a in sys.argv),
        "versions": framework_versions(),
        "metrics": {},
    }


def card_base_model(ref: str) -> str:
    """The base model as the card names it: the demo alias is its Hub original; local paths stay as they are."""
    return DEMO_BASE_MODEL if ref in DEMO_ALIASES else ref


def check_zero3_partitioned(model, deepspeed_plugin) -> bool | None:
    """Under ZeRO-3 the model must have been built inside ``zero.Init`` (it is passed to the trainer as a path, after
    the DeepSpeed config exists), or every rank held the whole model while loading: an 8B model at 32K tokens then runs
    out of memory, and the cause is hard to see. Logs what happened; returns None when ZeRO-3 is not in use."""
    if deepspeed_plugin is None or deepspeed_plugin.zero_stage != 3:
        return None
    params = list(model.parameters())
    partitioned = bool(params) and all(hasattr(p, "ds_id") and hasattr(p, "ds_status") for p in params)
    if partitioned:
        logger.info("ZeRO-3: the model was partitioned at load (%d parameter tensors under zero.Init)", len(params))
    else:
        logger.warning(
            "ZeRO-3 is configured but the model was not partitioned at load: every rank built it whole. Launch with "
            "an accelerate config whose deepspeed_config has zero3_init_flag: true (accelerate_configs/zero3.yaml)."
        )
    return partitioned


def setup_logging(training_args) -> int:
    """One log level per process, as the transformers examples and open-r1 set it: ``log_level`` on the main process
    (INFO when left ``passive``), ``log_level_replica`` (warnings) on the other ranks, so that 8 or 64 processes do not
    each print every data step and trainer message. Returns the level, applied to the running script's, the package's,
    TRL's, ``transformers``' and ``datasets``' loggers."""
    import datasets
    import transformers

    logging.basicConfig(
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%Y-%m-%d %H:%M:%S",
        handlers=[logging.StreamHandler(sys.stdout)],
    )
    if training_args.should_log:
        transformers.utils.logging.set_verbosity_info()  # what a `passive` log_level resolves to on the main process
    level = training_args.get_process_log_level()
    for name in ("__main__", "reer_hf", "trl"):
        logging.getLogger(name).setLevel(level)
    datasets.utils.logging.set_verbosity(level)
    transformers.utils.logging.set_verbosity(level)
    transformers.utils.logging.enable_default_handler()
    transformers.utils.logging.enable_explicit_format()
    return level


def prepare_data(script_args: SFTScriptArguments, training_args, model_args):
    """The model path, its tokenizer (the recipe's chat template and end-of-turn token applied) and the training data
    with its report, as the trainer will get them."""
    if not model_args.model_name_or_path:
        raise ValueError("model_name_or_path is required (a Hub id, a local path or builtin:smollm2-135m)")
    training_args.chat_template_path = resolve_chat_template_path(training_args.chat_template_path)
    model_path = resolve_model(model_args.model_name_or_path)
    tokenizer = load_sft_tokenizer(model_path, training_args, model_args)
    # Global rank 0 builds the data (and saves it to the data cache) first; the other ranks load that copy, or build
    # their own when they cannot read it (each node's local main first). See build_sft_dataset_on_ranks.
    dataset, report = build_sft_dataset_on_ranks(script_args, tokenizer, training_args)
    return model_path, tokenizer, dataset, report


def make_trainer(
    script_args: SFTScriptArguments, training_args, model_args, model_path: str, tokenizer, dataset, report
) -> ReerSFTTrainer:
    """``SFTTrainer`` on the data of :func:`prepare_data`, the model passed as a path with its init kwargs (so
    DeepSpeed ZeRO-3 builds it sharded), with the model card's context."""
    from trl import get_peft_config, get_quantization_config

    training_args.model_init_kwargs = model_init_kwargs(model_args, training_args)
    trainer = ReerSFTTrainer(
        model=model_path,
        args=training_args,
        train_dataset=dataset,
        processing_class=tokenizer,
        peft_config=get_peft_config(model_args),
        quantization_config=get_quantization_config(model_args),
    )
    check_zero3_partitioned(trainer.model, trainer.accelerator.state.deepspeed_plugin)
    trainer.reer_card_context = _card_context(
        script_args, training_args, model_args, report, card_base_model(model_args.model_name_or_path)
    )
    return trainer


def run_sft(script_args: SFTScriptArguments, training_args, model_args) -> dict:
    """Build the data and train (or, with ``dry_run``, print the data report); returns the train metrics or the
    report."""
    from transformers.trainer_utils import get_last_checkpoint

    model_path, tokenizer, dataset, report = prepare_data(script_args, training_args, model_args)
    if script_args.dry_run:
        if training_args.process_index == 0:
            report.describe(dataset, tokenizer)
            print(report.format(training_args.max_length))
        return report.to_dict()

    checkpoint = training_args.resume_from_checkpoint
    if checkpoint is None and script_args.reer_auto_resume and os.path.isdir(training_args.output_dir):
        checkpoint = get_last_checkpoint(training_args.output_dir)
    if checkpoint is not None:
        logger.info("Resuming from %s", checkpoint)

    trainer = make_trainer(script_args, training_args, model_args, model_path, tokenizer, dataset, report)
    result = trainer.train(resume_from_checkpoint=checkpoint)
    metrics = {**result.metrics, "train_samples": len(dataset)}
    metrics = {k: round(v, 4) if isinstance(v, float) else v for k, v in metrics.items()}
    trainer.log_metrics("train", metrics)
    trainer.save_metrics("train", metrics)
    trainer.save_state()

    trainer.model.config.use_cache = True  # the saved model generates with its KV cache
    trainer.save_model(training_args.output_dir)
    trainer.reer_card_context["metrics"] = metrics
    if trainer.is_world_process_zero():
        Path(training_args.output_dir, "sft_data_report.json").write_text(json.dumps(report.to_dict(), indent=2))
        trainer.create_model_card()
        logger.info("Model, card and metrics saved to %s", training_args.output_dir)
    if training_args.push_to_hub:
        trainer.push_to_hub(commit_message=f"DeepWriter SFT ({run_name(script_args)})")
    trainer.accelerator.wait_for_everyone()
    return metrics
