"""Input-pipeline throughput, and whether it can keep the baseline model fed.

Builds a prepared folder of synthetic records (random-noise 128x128 PNG faces) in a
temporary directory, then measures the training pipeline of ``fermtl_tf.data.pipeline``
(batch 64, 96x96, flip + rotation + scale + shift + noise) in images/s over several
epochs after one warm-up epoch. If the ResNet baseline is importable it also measures the
model's training images/s on in-memory tensors (no input pipeline) and reports the ratio
pipeline / model: above 1 the pipeline is not the bottleneck.

    .venv/bin/python benchmarks/pipeline_throughput.py [--records 512] [--epochs 3]

Prints one JSON object.
"""

import argparse
import json
import os
import platform
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from fermtl_tf.data import schema  # noqa: E402
from fermtl_tf.data.pipeline import make_dataset  # noqa: E402

AUGMENT = dict(flip=True, rotation_deg=30.0, scale=(0.8, 1.2), shift=0.1, noise_std=5.0)


def write_synthetic_folder(folder, num_records, size=128, num_aus=12, seed=0):
    """One shard of random-noise PNG crops with random landmarks and AU labels."""
    rng = np.random.default_rng(seed)
    au_names = [f"AU{i}" for i in range(1, num_aus + 1)]
    path = os.path.join(folder, "shard-00000-of-00001.tfrecord")
    with tf.io.TFRecordWriter(path) as writer:
        for i in range(num_records):
            image = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
            record = {
                "image": tf.io.encode_png(image).numpy(), "image_id": f"img{i}",
                "expression": i % 7, "expression_mask": 1, "landmarks_mask": 1,
                "landmarks": rng.uniform(0.2 * size, 0.8 * size, 136),
                "au": rng.integers(0, 2, num_aus), "au_mask": np.ones(num_aus), "split": "train",
            }
            writer.write(schema.encode_example(record, num_aus=num_aus, num_attributes=0))
    manifest = {
        "source": "benchmark", "image_size": [size, size], "landmarks_units": "pixels",
        "au_names": au_names, "num_aus": num_aus, "num_attributes": 0,
        "splits": {"train": num_records}, "shards": [{"path": os.path.basename(path)}],
    }
    with open(os.path.join(folder, "manifest.json"), "w") as handle:
        json.dump(manifest, handle)


def pipeline_rate(folder, batch_size, image_size, epochs, cache):
    """Images per second over ``epochs`` full passes, after one untimed warm-up pass."""
    dataset = make_dataset(folder, batch_size=batch_size, image_size=image_size,
                           augment=AUGMENT, cache=cache, seed=0)
    for _ in dataset:  # warm-up: graph tracing, autotuning, (cache fill)
        pass
    images, start = 0, time.perf_counter()
    for _ in range(epochs):
        for batch in dataset:
            images += int(batch["image"].shape[0])
    return images / (time.perf_counter() - start)


def model_rate(batch_size, image_size, steps):
    """Training images/s of the ResNet-18 landmark baseline on in-memory tensors."""
    try:
        from fermtl_tf.methods.baseline.model import BaselineModel
    except ImportError:
        return None
    model = BaselineModel(task="landmarks", depth=18, input_size=image_size[0])
    model.compile(optimizer="adam")
    rng = np.random.default_rng(0)
    batch = {
        "image": tf.constant(rng.uniform(-1, 1, (batch_size, *image_size, 3)), tf.float32),
        "landmarks": tf.constant(rng.uniform(0, 1, (batch_size, 68, 2)), tf.float32),
        "landmarks_mask": tf.ones([batch_size]),
    }
    data = tf.data.Dataset.from_tensors(batch).repeat().prefetch(2)
    model.fit(data, steps_per_epoch=2, epochs=1, verbose=0, shuffle=False)  # warm-up: tracing
    start = time.perf_counter()
    model.fit(data, steps_per_epoch=steps, epochs=1, verbose=0, shuffle=False)
    return steps * batch_size / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--image-size", type=int, default=96)
    parser.add_argument("--epochs", type=int, default=3, help="timed pipeline epochs")
    parser.add_argument("--model-steps", type=int, default=5, help="timed training steps")
    parser.add_argument("--cache", action="store_true", help="cache parsed records in memory")
    args = parser.parse_args()
    image_size = (args.image_size, args.image_size)

    with tempfile.TemporaryDirectory() as folder:
        write_synthetic_folder(folder, args.records)
        pipeline = pipeline_rate(folder, args.batch_size, image_size, args.epochs, args.cache)
    model = model_rate(args.batch_size, image_size, args.model_steps)
    print(json.dumps({
        "benchmark": "pipeline_throughput",
        "records": args.records, "source_size": 128, "image_size": list(image_size),
        "batch_size": args.batch_size, "timed_epochs": args.epochs, "cache": args.cache,
        "augment": {k: list(v) if isinstance(v, tuple) else v for k, v in AUGMENT.items()},
        "pipeline_images_per_s": round(pipeline, 1),
        "model": "baseline landmarks ResNet-18" if model is not None else None,
        "model_images_per_s": None if model is None else round(model, 1),
        "pipeline_to_model_ratio": None if model is None else round(pipeline / model, 2),
        "cpu_count": os.cpu_count(), "gpus": len(tf.config.list_physical_devices("GPU")),
        "tensorflow": tf.__version__, "python": platform.python_version(),
    }))


if __name__ == "__main__":
    main()
