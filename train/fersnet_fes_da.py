"""FES-DA data (Zhao et al., FERSNet §IV-D, Table VI 'w/ FES-DA'): every other-expression
synthesis of each training face, written by a trained FERSNet as a prepared folder.

    python train/fersnet_fes_da.py RUN/model.keras --data prepared/ckplus \
        --out prepared/ckplus_fes_da_fold0 --split unassigned --exclude-folds 0

reads the run's ``config.yaml`` (beside ``model.keras``) for the image size, normalisation
and augmentation (centre crop), synthesises E - 1 faces per labelled training face (same
identity, sequence, split and fold; expression = the target) and writes TFRecord shards
+ ``manifest.json`` (``"synthetic"`` says from what). Fine-tune on real + synthetic with a
``*_fes_da.yaml`` config (``method.train_synthesis: false``, ``init_from`` the FERSNet);
for a k-fold protocol synthesise from the training folds only (``--exclude-folds k``).
``fermtl-train train/configs/fersnet/<dataset>_fes_da.yaml --folds all`` does this itself
for every round (``method.fes_da_source``, ``augmentation.prepare_fes_da``).
"""

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def load_fersnet(model_path):
    """(FERSNet model, its run's ExperimentConfig) from ``<run>/model.keras``."""
    import keras

    from fermtl_tf.experiments.config import load_config
    from fermtl_tf.methods.fersnet.model import FERSNetModel

    model_path = Path(model_path)
    config_path = model_path.parent / "config.yaml"
    if not config_path.is_file():
        raise SystemExit(f"no config.yaml beside {model_path} (a fermtl-train run folder)")
    model = keras.saving.load_model(model_path, compile=False)
    if not isinstance(model, FERSNetModel) or not model.synthesis:
        raise SystemExit(f"{model_path}: not a FERSNet trained with synthesis")
    return model, load_config(config_path)


def write_fes_da(model_path, data, out, split="train", folds=None, exclude_folds=None):
    """Synthesise the FES-DA folder ``out`` from ``data`` with the FERSNet at
    ``model_path``; returns its manifest."""
    from fermtl_tf.methods.fersnet.augmentation import write_synthesis_dataset

    model, config = load_fersnet(model_path)
    augment = config.data.train[0].augment if config.data.train else None
    return write_synthesis_dataset(
        model, data, out, image_size=tuple(config.data.image_size),
        normalization=config.data.normalization, split=split, folds=folds,
        exclude_folds=exclude_folds, augment=augment, generator=model_path)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="model.keras of a FERSNet run (config.yaml beside it)")
    parser.add_argument("--data", required=True, help="prepared folder of the training faces")
    parser.add_argument("--out", required=True, help="new prepared folder for the syntheses")
    parser.add_argument("--split", default="train", help="split of the training faces "
                        "('unassigned' for a k-fold folder)")
    parser.add_argument("--folds", type=int, nargs="*", default=None)
    parser.add_argument("--exclude-folds", type=int, nargs="*", default=None)
    args = parser.parse_args(argv)
    manifest = write_fes_da(args.model, args.data, args.out, args.split, args.folds,
                            args.exclude_folds)
    print(json.dumps({"out": args.out, "written": manifest["counts"]["written"],
                      "per_class": manifest["synthetic"]["per_class"]}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
