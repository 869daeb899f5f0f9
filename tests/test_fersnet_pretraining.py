"""FERSNet pre-trained on BU-4DFE (Zhao et al., Sec. IV-B, Tables II-IV 'FERSNet (BU-4DFE)'):
the shipped configs, and the weight transfer of ``init_from`` from 6 to 7 classes."""

from pathlib import Path

import keras
import numpy as np
import pytest

from fermtl_tf.experiments.config import config_to_dict, load_config
from fermtl_tf.experiments.experiment import initialize_from
from fermtl_tf.methods.fersnet.model import FERSNetModel

CONFIGS = Path(__file__).resolve().parents[1] / "train" / "configs" / "fersnet"
DATASETS = ("ckplus", "oulu_casia", "mmi")


def test_pretraining_reads_every_bu4dfe_record_without_folds():
    config = load_config(CONFIGS / "bu4dfe_pretrain.yaml")
    (source,) = config.data.train
    assert (source.folder, source.split, source.folds, source.exclude_folds) == (
        "prepared/bu4dfe", "unassigned", None, None)
    assert config.cross_validation is None and config.init_from is None
    assert not config.data.validation


@pytest.mark.parametrize("dataset", DATASETS)
def test_fine_tuning_is_the_from_scratch_config_started_from_the_pretrained_model(dataset):
    pretrain = load_config(CONFIGS / "bu4dfe_pretrain.yaml")
    tuned = config_to_dict(load_config(CONFIGS / f"{dataset}_bu4dfe.yaml"))
    scratch = config_to_dict(load_config(CONFIGS / f"{dataset}.yaml"))
    assert tuned.pop("init_from") == f"{pretrain.output_dir}/model.keras"
    assert scratch.pop("init_from") is None
    for key in ("name", "output_dir"):
        assert tuned.pop(key) == f"{scratch.pop(key)}_bu4dfe"
    assert tuned == scratch


TINY = dict(image_size=(32, 32), encoder_widths=[4, 8, 8, 8], decoder_widths=[8, 8, 4, 4],
            classifier_units=8, transformer_channels=4, discriminator_widths=[4, 8, 8, 8])


def test_six_class_model_initialises_a_seven_class_one_but_for_the_label_sized_layers(
        tmp_path):
    pretrained = FERSNetModel(num_classes=6, **TINY)
    pretrained.compile(optimizer=keras.optimizers.Adam(),
                       discriminator_optimizer=keras.optimizers.Adam())
    pretrained.save(tmp_path / "pretrained.keras")
    tuned = FERSNetModel(num_classes=7, **TINY)
    fresh = {w.path: w.numpy().copy() for w in tuned.weights}
    with pytest.warns(UserWarning):  # Keras names each layer it skips
        initialize_from(tuned, tmp_path / "pretrained.keras")
    source = {w.path: w.numpy() for w in pretrained.weights}
    skipped = []
    for weight in tuned.weights:
        if source[weight.path].shape == tuple(weight.shape):
            np.testing.assert_array_equal(weight.numpy(), source[weight.path], weight.path)
        else:
            np.testing.assert_array_equal(weight.numpy(), fresh[weight.path], weight.path)
            skipped.append(weight.path)
    # f_cls's output layer, f_tra's input layer, D's first convolution (image + label maps)
    assert sorted(skipped) == ["d_conv1/kernel", "fc/kernel", "fc2/bias", "fc2/kernel"]
