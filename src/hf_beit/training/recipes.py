"""End-to-end fine-tuning recipes (the Python API behind ``hf-beit train classification|segmentation``)."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import datasets
import torch
from transformers import TrainingArguments, set_seed

from .. import BEIT_PRESETS, BeitConfig
from ..hub import resolve_model_dir
from ..hub_upload import push_folder
from ..retargeting import segmentation_out_indices
from .augment import (
    BEIT_MEAN,
    BEIT_STD,
    AugmentConfig,
    Mixup,
    build_eval_transform,
    build_segmentation_transform,
    build_train_transform,
)
from .checkpoints import resume_path, save_final_model
from .collators import collate_pixel_batch
from .curves import write_curves
from .data_check import check_class_folders, check_training_data
from .datasets import LabelSchema, infer_label_schema, load_source, segmentation_schema, with_validation_split
from .init_from import build_model, finetune_config
from .metrics.trainer_metrics import (
    float_logits,
    multi_label_metrics,
    segmentation_logits_to_labels,
    segmentation_metrics_fn,
    single_label_metrics,
)
from .model_card import finetuned_card, write_card_and_example
from .preprocess import ClassificationExample, EpochCallback, SegmentationExample, TransformedDataset
from .run_directory import ARGUMENTS_FILE, FINAL_MODEL_DIR, TRAINING_LOG, prepare_run_directory
from .trainer import BeitTrainer, JsonlLoggerCallback

logger = logging.getLogger(__name__)

# A small BEiT that trains from scratch on CPU in minutes (32x32 images, 8x8 patches -> 4x4 grid).
TINY_PRESET: dict[str, Any] = {
    "hidden_size": 96,
    "num_hidden_layers": 6,
    "num_attention_heads": 3,
    "intermediate_size": 384,
    "image_size": 32,
    "patch_size": 8,
    "layer_norm_eps": 1e-6,
    "use_relative_position_bias": True,
    "use_mean_pooling": True,
    "layer_scale_init_value": 0.1,
    "auxiliary_channels": 64,
}


@dataclass
class FinetuneArguments:
    """Everything a fine-tuning run needs; CLI flags map one-to-one onto these fields."""

    task: str
    output_dir: str
    dataset: str | None = None
    image_column: str = "image"
    label_column: str | None = None
    validation_fraction: float = 0.1
    max_train_samples: int | None = None
    max_eval_samples: int | None = None
    # model
    init_from: str | None = None
    config: str = "tiny"
    image_size: int | None = None
    drop_path: float = 0.1
    head_init_scale: float = 0.001
    num_labels: int | None = None
    reduce_labels: bool = False
    ignore_index: int = 255
    # optimisation
    epochs: float = 30.0
    max_steps: int = -1
    batch_size: int = 64
    eval_batch_size: int | None = None
    gradient_accumulation_steps: int = 1
    learning_rate: float = 5e-4
    min_learning_rate: float = 1e-6
    weight_decay: float = 0.05
    layer_decay: float = 0.9
    decay_relative_position_tables: bool = True
    warmup: float = 0.1
    clip_grad: float | None = None
    label_smoothing: float = 0.1
    mixup: float = 0.0
    cutmix: float = 0.0
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    bf16: bool = False
    # bookkeeping
    eval_steps: int | None = None
    logging_steps: int = 10
    save_total_limit: int = 2
    seed: int = 42
    num_workers: int = 0
    resume: str | bool | None = None
    overwrite: bool = False
    disable_tqdm: bool = False
    report_to: list[str] = field(default_factory=lambda: ["none"])
    push_to_hub: str | None = None
    hub_endpoint: str | None = None

    def __post_init__(self):
        if self.task not in ("classification", "segmentation"):
            raise ValueError(f"task must be 'classification' or 'segmentation', got {self.task!r}.")
        if self.layer_decay <= 0 or self.layer_decay > 1:
            raise ValueError(f"layer_decay must be in (0, 1], got {self.layer_decay}.")
        if not 0 <= self.label_smoothing < 1:
            raise ValueError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}.")
        if self.min_learning_rate > self.learning_rate:
            raise ValueError("min_learning_rate must not exceed learning_rate.")


def _base_config(args: FinetuneArguments, schema: LabelSchema) -> BeitConfig:
    labels = dict(schema.id2label)
    overrides: dict[str, Any] = {"drop_path_rate": args.drop_path, "semantic_loss_ignore_index": args.ignore_index}
    if args.image_size is not None:
        overrides["image_size"] = args.image_size
    if args.init_from is not None:
        return finetune_config(args.init_from, args.task, labels, **overrides)
    if args.config == "tiny":
        values = dict(TINY_PRESET)
    elif args.config in BEIT_PRESETS:
        values = dict(BEIT_PRESETS[args.config])
    elif Path(args.config).is_file():
        values = json.loads(Path(args.config).read_text())
        for key in ("id2label", "label2id", "num_labels", "architectures", "out_features", "stage_names"):
            values.pop(key, None)
    else:
        raise ValueError(
            f"--config {args.config!r} is neither 'tiny', a preset ({', '.join(BEIT_PRESETS)}) nor a config.json file."
        )
    values.update(overrides)
    if args.task == "segmentation":
        values["out_indices"] = segmentation_out_indices(values.get("out_indices"), values["num_hidden_layers"])
    return BeitConfig.from_dict({**values, "id2label": labels, "label2id": {v: k for k, v in labels.items()}})


def _load_data(args: FinetuneArguments, data) -> datasets.DatasetDict:
    if data is None:
        if args.dataset is None:
            raise ValueError("Pass a dataset: --dataset digits, an image folder, a mask folder or a saved dataset.")
        data = load_source(args.dataset, args.task)
    elif isinstance(data, datasets.Dataset):
        data = datasets.DatasetDict({"train": data})
    data = with_validation_split(data, args.validation_fraction, args.seed)
    limits = {"train": args.max_train_samples, "validation": args.max_eval_samples, "test": args.max_eval_samples}
    return datasets.DatasetDict(
        {
            name: split.select(range(min(limits[name], len(split)))) if limits[name] else split
            for name, split in data.items()
        }
    )


def _label_column(args: FinetuneArguments, train: datasets.Dataset) -> str:
    if args.label_column is not None:
        return args.label_column
    default = "annotation" if args.task == "segmentation" else "label"
    candidates = (default, "labels", "label", "mask", "segmentation")
    for name in candidates:
        if name in train.column_names:
            return name
    check_class_folders(args.dataset)  # an image folder of one class has no label column at all
    raise ValueError(f"No label column found among {train.column_names}; pass --label-column.")


def _normalisation(args: FinetuneArguments) -> tuple[list[float], list[float]]:
    """Mean/std of the checkpoint's ``preprocessor_config.json`` when fine-tuning, else BEiT's 0.5/0.5."""
    saved_file = resolve_model_dir(args.init_from) / "preprocessor_config.json" if args.init_from else None
    if saved_file is not None and saved_file.is_file():
        saved = json.loads(saved_file.read_text())
        if "image_mean" in saved and "image_std" in saved:
            return list(saved["image_mean"]), list(saved["image_std"])
    return list(BEIT_MEAN), list(BEIT_STD)


def _image_processor(image_size: int, task: str, reduce_labels: bool, mean: list[float], std: list[float]):
    """The processor saved with the model; it reproduces the evaluation transform."""
    try:
        from .. import BeitImageProcessor
    except (ImportError, AttributeError):
        from transformers import BeitImageProcessor
    from PIL import Image

    resample = Image.Resampling.BILINEAR if task == "segmentation" else Image.Resampling.BICUBIC
    return BeitImageProcessor(
        do_resize=True,
        size={"height": image_size, "width": image_size},
        resample=resample,
        do_center_crop=False,
        do_rescale=True,
        rescale_factor=1 / 255,
        do_normalize=True,
        image_mean=mean,
        image_std=std,
        do_reduce_labels=reduce_labels,
    )


def _wrap_splits(args, data, schema, label_column, image_size) -> dict[str, TransformedDataset]:
    """Training split with seeded random augmentation, validation split with the deterministic eval transform."""
    mean, std = _normalisation(args)
    wrapped = {}
    for split in data:
        train = split == "train"
        if args.task == "classification":
            if train:
                transform = build_train_transform(image_size, args.augment, mean, std)
            else:
                transform = build_eval_transform(image_size, mean, std)
            example_fn = ClassificationExample(transform, schema, args.image_column, label_column)
        else:
            transform = build_segmentation_transform(image_size, train, args.augment, mean, std)
            example_fn = SegmentationExample(
                transform, schema.num_labels, args.image_column, label_column, args.reduce_labels, args.ignore_index
            )
        wrapped[split] = TransformedDataset(data[split], example_fn, seed=args.seed if train else None)
    return wrapped


def _training_arguments(args: FinetuneArguments, metric: str) -> TrainingArguments:
    use_cpu = not torch.cuda.is_available()
    strategy = "steps" if args.eval_steps else "epoch"
    return TrainingArguments(
        output_dir=args.output_dir,
        num_train_epochs=args.epochs,
        max_steps=args.max_steps,
        per_device_train_batch_size=args.batch_size,
        per_device_eval_batch_size=args.eval_batch_size or args.batch_size,
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        learning_rate=args.learning_rate,
        weight_decay=args.weight_decay,
        adam_beta1=0.9,
        adam_beta2=0.999,
        adam_epsilon=1e-8,
        lr_scheduler_type="cosine_with_min_lr",
        lr_scheduler_kwargs={"min_lr_rate": args.min_learning_rate / args.learning_rate},
        warmup_steps=args.warmup,
        max_grad_norm=args.clip_grad or 0.0,
        eval_strategy=strategy,
        save_strategy=strategy,
        eval_steps=args.eval_steps,
        save_steps=args.eval_steps,
        logging_strategy="steps",
        logging_steps=args.logging_steps,
        load_best_model_at_end=True,
        metric_for_best_model=metric,
        greater_is_better=True,
        save_total_limit=args.save_total_limit,
        bf16=args.bf16,
        use_cpu=use_cpu,
        ddp_backend="gloo" if use_cpu and int(os.environ.get("WORLD_SIZE", "1")) > 1 else None,
        dataloader_num_workers=args.num_workers,
        remove_unused_columns=False,
        report_to=list(args.report_to),
        seed=args.seed,
        disable_tqdm=args.disable_tqdm,
    )


def run_finetuning(args: FinetuneArguments, data: datasets.DatasetDict | datasets.Dataset | None = None) -> dict:
    """Train, keep the best checkpoint, save it to ``<output_dir>/model`` with a model card and return its validation
    metrics; ``push_to_hub`` then uploads that folder."""
    prepare_run_directory(args.output_dir, overwrite=args.overwrite, resume=args.resume)
    data = _load_data(args, data)
    label_column = _label_column(args, data["train"])
    if args.task == "segmentation":
        root = args.dataset if args.dataset and Path(args.dataset).is_dir() else None
        schema = segmentation_schema(data["train"], root, args.num_labels, args.ignore_index)
    else:
        schema = infer_label_schema(data["train"], label_column)
    check_training_data(data, args.task, schema, args.image_column, label_column, args.reduce_labels,
                        args.ignore_index, progress=not args.disable_tqdm)
    config = _base_config(args, schema)
    if args.task == "classification":
        config.problem_type = "multi_label_classification" if schema.multi_label else "single_label_classification"
    image_size = config.image_size_2d[0]
    set_seed(args.seed)  # the new weights are drawn here, before the Trainer seeds: same seed, same model
    model = build_model(args.task, config, args.init_from, args.head_init_scale)
    splits = _wrap_splits(args, data, schema, label_column, image_size)

    if args.task == "segmentation":
        metric, compute_metrics = "mean_iou", segmentation_metrics_fn(schema.num_labels, args.ignore_index)
        preprocess = segmentation_logits_to_labels
    else:
        metric = "mAP" if schema.multi_label else "accuracy"
        compute_metrics = multi_label_metrics if schema.multi_label else single_label_metrics
        preprocess = float_logits
    mixup = None
    if args.mixup > 0 or args.cutmix > 0:
        mixup = Mixup(schema.num_labels, args.mixup, args.cutmix, label_smoothing=args.label_smoothing)
    trainer = BeitTrainer(
        model=model,
        args=_training_arguments(args, metric),
        data_collator=collate_pixel_batch,
        train_dataset=splits["train"],
        eval_dataset=splits["validation"],
        compute_metrics=compute_metrics,
        preprocess_logits_for_metrics=preprocess,
        callbacks=[JsonlLoggerCallback(Path(args.output_dir) / TRAINING_LOG), EpochCallback(splits["train"])],
        task=args.task,
        layer_decay=args.layer_decay,
        decay_relative_position_tables=args.decay_relative_position_tables,
        multi_label=schema.multi_label,
        label_smoothing=args.label_smoothing,
        mixup=mixup,
    )
    train_result = trainer.train(resume_from_checkpoint=resume_path(args.resume, args.output_dir))
    metrics = {**trainer.evaluate(), "train_runtime": train_result.metrics.get("train_runtime")}
    if "test" in splits:  # never used for model selection
        metrics.update(trainer.evaluate(eval_dataset=splits["test"], metric_key_prefix="test"))
    if trainer.is_world_process_zero():
        processor = _image_processor(image_size, args.task, args.reduce_labels, *_normalisation(args))
        model_dir = Path(args.output_dir) / FINAL_MODEL_DIR
        arguments = dataclasses.asdict(args)
        card = finetuned_card(args.push_to_hub or str(model_dir), args.task, trainer.model.config, arguments, metrics)
        save_final_model(trainer.model, processor, model_dir, metrics,
                         extras=lambda folder: write_card_and_example(folder, card))
        (Path(args.output_dir) / ARGUMENTS_FILE).write_text(json.dumps(arguments, indent=2, default=str))
        write_curves(Path(args.output_dir) / TRAINING_LOG, args.output_dir)  # loss.png, metrics.png
        if args.push_to_hub:
            push_folder(model_dir, args.push_to_hub, endpoint=args.hub_endpoint,
                        commit_message="Upload BEiT fine-tuned with hf_beit (hf-beit train)")
    return metrics


def train_classification(output_dir: str, data=None, **kwargs) -> dict:
    """Fine-tune (or train from scratch) an image classifier; see :class:`FinetuneArguments` for the options."""
    return run_finetuning(FinetuneArguments(task="classification", output_dir=output_dir, **kwargs), data)


def train_segmentation(output_dir: str, data=None, **kwargs) -> dict:
    """Fine-tune a UPerNet segmentation model; see :class:`FinetuneArguments` for the options."""
    return run_finetuning(FinetuneArguments(task="segmentation", output_dir=output_dir, **kwargs), data)
