"""Train Light CNN-9 on identity labels: the identity network of FERSNet's L_idt (Zhao et
al., Eq. 9) where the pretrained model-B cannot be had (data_prep/light_cnn.md, option 2).

The network sees what FERSNet's identity loss shows it (``identity_network_input``): grey
faces in [0, 1] resized to ``input_size``. Trained with softmax cross-entropy on the
``identity`` labels of a prepared folder (Wu et al. train on CASIA-WebFace / MS-Celeb-1M
identities the same way), saved as a ``.keras`` file whose feature layers
``load_light_cnn_weights`` copies by name (the ``fc2`` identity head is ignored).
"""

from pathlib import Path

import keras
import tensorflow as tf

from fermtl_tf.backbones.light_cnn import light_cnn_9
from fermtl_tf.data.pipeline import load_manifest, make_dataset


def identity_batches(folder, input_size, split="train", batch_size=64, training=True, seed=0,
                     augment=None):
    """(grey [0, 1] image at ``input_size``, identity) batches of a prepared folder; faces
    without an identity label (-1) are dropped."""
    batches = make_dataset(str(folder), split=split, batch_size=batch_size, training=training,
                           augment=augment, normalization="zero_one", seed=seed,
                           image_size=(input_size, input_size), deterministic=True)

    def grey(batch):
        keep = batch["identity"] >= 0
        images = tf.image.rgb_to_grayscale(tf.boolean_mask(batch["image"], keep))
        return images, tf.boolean_mask(batch["identity"], keep)

    return batches.map(grey)


def num_identities(folder):
    """Identity classes of a prepared folder: one more than the largest index of its
    manifest's ``identities`` (name -> index), or that number where it is a count."""
    identities = load_manifest(str(folder)).get("identities") or {}
    if isinstance(identities, int):
        return identities
    return max(int(index) for index in identities.values()) + 1 if identities else 0


def train_light_cnn(folder, out_path, input_size=32, split="train", epochs=10, batch_size=64,
                    learning_rate=1e-3, seed=0, augment=None, verbose=0):
    """Train Light CNN-9 (``input_size`` x ``input_size`` grey) to classify the identities
    of ``folder``'s ``split``; save it at ``out_path`` (``.keras``) and return
    ``(model, final training accuracy)``."""
    if not str(out_path).endswith(".keras"):
        raise ValueError(f"the Light CNN is saved as a .keras file; got {out_path}")
    keras.utils.set_random_seed(seed)
    classes = num_identities(folder)
    if classes < 2:
        raise ValueError(f"{folder}: manifest.json counts {classes} identities; training an "
                         "identity network needs at least two")
    network = light_cnn_9((input_size, input_size, 1), num_classes=classes)
    trainer = keras.Model(network.input, network.output["identity_logits"])
    trainer.compile(optimizer=keras.optimizers.Adam(learning_rate),
                    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                    metrics=["accuracy"])
    history = trainer.fit(identity_batches(folder, input_size, split, batch_size, True, seed,
                                           augment),
                          epochs=epochs, verbose=verbose)
    Path(out_path).parent.mkdir(parents=True, exist_ok=True)
    network.save(out_path)
    return network, float(history.history["accuracy"][-1])
