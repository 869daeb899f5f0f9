"""``FERSNetModel``: joint expression recognition and synthesis (Zhao et al.), trained as a
conditional GAN with alternating discriminator and generator steps.

One ``train_step`` (batch dict with ``image``, ``expression``, ``expression_mask`` and,
from ``fermtl_tf.data.target_pairs``, ``target_image``/``target_expression``):

1. generator forward: FER logits and the synthesis G(z_t, I);
2. **D step** with ``discriminator_optimizer`` on the discriminator's variables only:
   minimise -L_GAN (Eq. 6) on (z_t, I_t) real vs (z_t, G(z_t, I)) fake, G's output held
   constant;
3. **G step** with ``optimizer`` on every other trainable variable (both branches, the
   ConvFLUs, f_cls, f_tra, f_dec; the identity network is frozen), Eq. 10::

       L = L_cls + λ1 L_GAN + λ2 L_rec + λ3 L_cyc + λ4(t) L_idt

   with the *updated* discriminator (the order of pix2pix's training loop, Isola et al.).

``synthesis=False`` is the FER branch alone ("w/o MTL", Table VI): only L_cls, one
optimiser. ``train_synthesis=False`` keeps the whole network (so a trained FERSNet's
weights load and the export still synthesises) but trains only the recognition side
(encoder incl. ConvFLUs, f_cls) on L_cls: the FES-DA fine-tuning of Table VI's last row
(§IV-D), on the training set enlarged with syntheses (``methods/fersnet/augmentation``). Serving: ``model(images)`` / ``predict`` returns ``{"expression_logits"}``;
``synthesize(images, target_expression)`` returns G(z_t, I); ``gate_maps(images)`` the
ConvFLU gates (Fig. 3).
"""

import keras
import tensorflow as tf

from fermtl_tf.backbones.light_cnn import light_cnn_9
from fermtl_tf.losses import (
    MaskedSoftmaxCrossEntropy,
    discriminator_loss,
    generator_loss,
    linear_ramp,
    squared_error,
)
from fermtl_tf.methods.fersnet import network

#: the image range of each normalisation, as the decoder's output activation.
OUTPUT_ACTIVATIONS = {"minus_one_one": "tanh", "zero_one": "sigmoid"}

_LOSS_NAMES = ("classification_loss", "gan_loss", "reconstruction_loss", "cycle_loss",
               "identity_loss", "identity_weight", "discriminator_loss")


def to_unit_range(images, normalization):
    """Model-normalised images -> [0, 1] (the inverse of ``normalize_images``); a
    ``per_image`` standardised image cannot be inverted and is min-max scaled instead."""
    images = tf.cast(images, tf.float32)
    if normalization == "minus_one_one":
        images = (images + 1.0) / 2.0
    elif normalization == "none":
        images = images / 255.0
    elif normalization == "per_image":
        low = tf.reduce_min(images, axis=[1, 2, 3], keepdims=True)
        high = tf.reduce_max(images, axis=[1, 2, 3], keepdims=True)
        images = (images - low) / tf.maximum(high - low, 1e-6)
    return tf.clip_by_value(images, 0.0, 1.0)


def identity_network_input(images, normalization, size):
    """Model-normalised RGB images -> Light CNN input: grey, [0, 1], ``size`` x ``size``
    (Light CNN is trained on grey faces in [0, 1], Wu et al.)."""
    grey = tf.image.rgb_to_grayscale(to_unit_range(images, normalization))
    return tf.image.resize(grey, (size, size))


@keras.saving.register_keras_serializable(package="fermtl_tf")
class FERSNetModel(keras.Model):
    """FERSNet (Zhao et al., Fig. 1) with its training step; see the module docstring.

    Args:
        num_classes: E, the number of expressions.
        image_size: (height, width), both divisible by 16.
        sharing: ``"convflu"`` (the paper), ``"hard"`` ("w/o ConvFLU") or ``"none"``.
        synthesis: train the FES task; False (with ``sharing="none"``) is "w/o MTL".
        encoder_widths, decoder_widths: channels of the four encoder / decoder blocks.
        classifier_units: width of f_cls's first FC layer.
        transformer_channels, transformer_upsamplings: f_tra's map (channels, number of
            2x2 stride-2 transposed convolutions after its FC layer).
        discriminator_widths: the PatchGAN's convolution widths.
        batch_norm_momentum: Keras momentum (0.9 = PyTorch's default 0.1).
        normalization: the input normalisation (chooses the decoder's output activation
            and how images are shown to the identity network).
        gan_weight, reconstruction_weight, cycle_weight: λ1, λ2, λ3 of Eq. 10.
        identity_weight_start, identity_weight_end: λ4 ramps linearly between them over
            ``identity_ramp_steps`` (a ``compile`` argument) generator steps.
        generator_objective: ``"non_saturating"`` or ``"minimax"`` (see losses/adversarial).
        squared_error_reduction: ``"mean"`` or ``"sum"`` per sample for Eq. 7-9.
        identity_input_size: side of the Light CNN-9 input; None = no identity loss. Its
            weights are loaded by the builder (``load_light_cnn_weights``) and saved with
            the model.
        train_synthesis: False trains the recognition side on L_cls alone (FES-DA).
    """

    def __init__(self, num_classes, image_size=(96, 96), sharing="convflu", synthesis=True,
                 encoder_widths=(64, 128, 256, 512), decoder_widths=(256, 128, 64, 32),
                 classifier_units=512, transformer_channels=64, transformer_upsamplings=1,
                 discriminator_widths=(64, 128, 256, 512), batch_norm_momentum=0.9,
                 normalization="minus_one_one", gan_weight=0.3, reconstruction_weight=1.0,
                 cycle_weight=0.5, identity_weight_start=0.1, identity_weight_end=0.5,
                 generator_objective="non_saturating", squared_error_reduction="mean",
                 identity_input_size=None, train_synthesis=True, **kwargs):
        super().__init__(**kwargs)
        height, width = (int(v) for v in image_size)
        if height % 16 or width % 16:
            raise ValueError(f"FERSNet image_size must be divisible by 16 (four 2x2 pools); "
                             f"got {image_size}.")
        if bool(synthesis) == (sharing == "none"):
            raise ValueError("FERSNet: sharing 'convflu' or 'hard' trains synthesis "
                             "(synthesis=True); sharing 'none' is the FER branch alone "
                             f"(synthesis=False); got sharing={sharing!r}, "
                             f"synthesis={synthesis!r}.")
        self.num_classes = int(num_classes)
        self.image_size = (height, width)
        self.sharing = sharing
        self.synthesis = bool(synthesis)
        self.encoder_widths = [int(v) for v in encoder_widths]
        self.decoder_widths = [int(v) for v in decoder_widths]
        self.classifier_units = int(classifier_units)
        self.transformer_channels = int(transformer_channels)
        self.transformer_upsamplings = int(transformer_upsamplings)
        self.discriminator_widths = [int(v) for v in discriminator_widths]
        self.batch_norm_momentum = float(batch_norm_momentum)
        self.normalization = normalization
        self.gan_weight = float(gan_weight)
        self.reconstruction_weight = float(reconstruction_weight)
        self.cycle_weight = float(cycle_weight)
        self.identity_weight_start = float(identity_weight_start)
        self.identity_weight_end = float(identity_weight_end)
        self.generator_objective = generator_objective
        self.squared_error_reduction = squared_error_reduction
        self.identity_input_size = None if identity_input_size is None else int(identity_input_size)
        self.train_synthesis = bool(train_synthesis) and self.synthesis
        self.identity_ramp_steps = 0
        self._build_parts()
        self._classification_loss = MaskedSoftmaxCrossEntropy(name="classification")
        names = ("loss", *_LOSS_NAMES) if self.synthesis else ("loss", "classification_loss")
        self._trackers = {name: keras.metrics.Mean(name=name) for name in names}
        self._accuracy = keras.metrics.SparseCategoricalAccuracy(name="accuracy")
        self.built = True  # every weight exists: the parts are built functional models

    def _build_parts(self):
        momentum = self.batch_norm_momentum
        image_shape = (*self.image_size, 3)
        self.encoder = network.encoder(image_shape, self.encoder_widths, self.sharing, momentum)
        feature_shape = self.encoder.output["fer_features"].shape[1:]
        self.classifier = network.classifier(feature_shape, self.classifier_units,
                                             self.num_classes)
        self.discriminator = None
        self.identity_network = None
        if not self.synthesis:
            return
        self.transformer = network.transformer(
            self.num_classes, feature_shape[:2], self.transformer_channels,
            self.transformer_upsamplings, momentum)
        fused_shape = (*feature_shape[:2], feature_shape[-1] + self.transformer_channels)
        self.decoder = network.decoder(
            fused_shape, self.decoder_widths,
            OUTPUT_ACTIVATIONS.get(self.normalization, "linear"), momentum)
        self.discriminator = network.discriminator(image_shape, self.num_classes,
                                                   self.discriminator_widths, momentum)
        if self.identity_input_size is not None:
            side = self.identity_input_size
            self.identity_network = light_cnn_9((side, side, 1), name="identity_network")
            self.identity_network.trainable = False

    # ---------------------------------------------------------------- forward passes
    @property
    def generator_variables(self):
        """What the G step trains: everything but D and the frozen identity network."""
        parts = [self.encoder, self.classifier]
        if self.synthesis:
            parts += [self.transformer, self.decoder]
        return [v for part in parts for v in part.trainable_variables]

    @property
    def recognition_variables(self):
        """What L_cls reaches: the encoder (both branches and the ConvFLUs) and f_cls."""
        return [v for part in (self.encoder, self.classifier) for v in part.trainable_variables]

    def _one_hot(self, labels):
        return tf.one_hot(tf.cast(labels, tf.int32), self.num_classes)

    def _generate(self, fes_features, target_expression, training):
        """f_dec([FES features, f_tra(z_t)]): the synthesis G(z_t, I) from FES features."""
        label_map = self.transformer(self._one_hot(target_expression), training=training)
        fused = tf.concat([fes_features, tf.cast(label_map, fes_features.dtype)], axis=-1)
        return self.decoder(fused, training=training)

    def call(self, inputs, training=False):
        """Images (or a batch dict with ``image``) -> ``{"expression_logits"}``."""
        images = inputs["image"] if isinstance(inputs, dict) else inputs
        features = self.encoder(images, training=training)
        return {"expression_logits": self.classifier(features["fer_features"],
                                                     training=training)}

    def synthesize(self, images, target_expression):
        """G(z_t, I): ``images`` [N, H, W, 3] (normalised) with the expressions
        ``target_expression`` (int [N]) -> synthetic images in the same normalisation."""
        if not self.synthesis:
            raise ValueError("this FERSNet was built without synthesis (synthesis=False).")
        features = self.encoder(images, training=False)
        return self._generate(features["fes_features"], target_expression, training=False)

    def gate_maps(self, images):
        """The ConvFLU gates r and z of every transference block (Fig. 3), by name."""
        if self.sharing != "convflu":
            raise ValueError(f"this FERSNet has no ConvFLUs (sharing={self.sharing!r}).")
        features = self.encoder(images, training=False)
        return {name: value for name, value in features.items() if "gate" in name}

    # ---------------------------------------------------------------- training
    def compile(self, optimizer="adam", discriminator_optimizer=None, identity_ramp_steps=0,
                **kwargs):
        """``optimizer`` trains the generator side, ``discriminator_optimizer`` D (required
        when ``synthesis``); λ4 ramps over ``identity_ramp_steps`` generator steps. Both
        optimisers are built here, so their state restores from a checkpoint."""
        super().compile(optimizer=optimizer, **kwargs)
        self.identity_ramp_steps = int(identity_ramp_steps)
        self.optimizer.build(self.generator_variables)
        self.discriminator_optimizer = None
        if self.synthesis:
            if discriminator_optimizer is None:
                raise ValueError("FERSNetModel.compile needs discriminator_optimizer= when "
                                 "synthesis is on (the D step has its own optimiser).")
            self.discriminator_optimizer = keras.optimizers.get(discriminator_optimizer)
            self.discriminator_optimizer.build(self.discriminator.trainable_variables)

    def get_compile_config(self):
        config = dict(super().get_compile_config() or {})
        config["identity_ramp_steps"] = self.identity_ramp_steps
        if self.discriminator_optimizer is not None:
            config["discriminator_optimizer"] = keras.optimizers.serialize(
                self.discriminator_optimizer)
        return config

    def compile_from_config(self, config):
        config = dict(config)
        discriminator_optimizer = config.pop("discriminator_optimizer", None)
        config = keras.saving.deserialize_keras_object(config)
        if discriminator_optimizer is not None:
            discriminator_optimizer = keras.optimizers.deserialize(discriminator_optimizer)
        self.compile(discriminator_optimizer=discriminator_optimizer, **config)

    @property
    def metrics(self):
        return [*self._trackers.values(), self._accuracy]

    def _record(self, values, labels, logits, mask):
        for name, value in values.items():
            self._trackers[name].update_state(value)
        self._accuracy.update_state(labels, logits, sample_weight=mask)
        return {metric.name: metric.result() for metric in self.metrics}

    @staticmethod
    def _labels(data):
        labels = tf.cast(data["expression"], tf.int32)
        mask = data.get("expression_mask")
        mask = tf.ones_like(labels, tf.float32) if mask is None else tf.cast(mask, tf.float32)
        return labels, mask

    def _apply(self, optimizer, tape, loss, variables):
        optimizer.apply(tape.gradient(loss, variables), variables)

    def train_step(self, data):
        images = data["image"]
        labels, mask = self._labels(data)
        if not self.train_synthesis:
            with tf.GradientTape() as tape:
                logits = self(images, training=True)["expression_logits"]
                loss = self._classification_loss(labels, logits, sample_weight=mask)
            self._apply(self.optimizer, tape, loss, self.recognition_variables)
            return self._record({"loss": loss, "classification_loss": loss}, labels, logits,
                                mask)
        for key in ("target_image", "target_expression"):
            if key not in data:
                raise KeyError(f"FERSNet training batches need {key!r}; add them with "
                               "fermtl_tf.data.target_pairs.add_target_pairs.")
        target_images, target_labels = data["target_image"], data["target_expression"]
        generator_tape = tf.GradientTape()
        with generator_tape:
            features = self.encoder(images, training=True)
            logits = self.classifier(features["fer_features"], training=True)
            synthetic = self._generate(features["fes_features"], target_labels, training=True)
        d_loss = self._discriminator_step(target_images, synthetic, target_labels)
        with generator_tape:
            losses = self._generator_losses(images, labels, mask, logits, synthetic,
                                            target_images, target_labels)
        self._apply(self.optimizer, generator_tape, losses["loss"], self.generator_variables)
        return self._record({**losses, "discriminator_loss": d_loss}, labels, logits, mask)

    def _discriminator_step(self, target_images, synthetic, target_labels):
        """One D update on real (z_t, I_t) vs fake (z_t, G(z_t, I)); returns -L_GAN."""
        condition = self._one_hot(target_labels)
        variables = self.discriminator.trainable_variables
        with tf.GradientTape() as tape:
            real = self.discriminator([target_images, condition], training=True)
            fake = self.discriminator([tf.stop_gradient(synthetic), condition], training=True)
            loss = discriminator_loss(real, fake)
        self._apply(self.discriminator_optimizer, tape, loss, variables)
        return loss

    def _generator_losses(self, images, labels, mask, logits, synthetic, target_images,
                          target_labels):
        """The terms of Eq. 10 and their weighted sum ``loss``."""
        reduction = self.squared_error_reduction
        fake = self.discriminator([synthetic, self._one_hot(target_labels)], training=True)
        cycled = self._cycle(synthetic, labels)
        losses = {
            "classification_loss": self._classification_loss(labels, logits,
                                                             sample_weight=mask),
            "gan_loss": generator_loss(fake, self.generator_objective),
            "reconstruction_loss": squared_error(synthetic, target_images, reduction),
            "cycle_loss": squared_error(cycled, images, reduction),
            "identity_weight": linear_ramp(self.optimizer.iterations, self.identity_ramp_steps,
                                           self.identity_weight_start,
                                           self.identity_weight_end),
        }
        losses["identity_loss"] = self._identity_loss(synthetic, target_images)
        losses["loss"] = (losses["classification_loss"]
                          + self.gan_weight * losses["gan_loss"]
                          + self.reconstruction_weight * losses["reconstruction_loss"]
                          + self.cycle_weight * losses["cycle_loss"]
                          + losses["identity_weight"] * losses["identity_loss"])
        return losses

    def _cycle(self, synthetic, labels):
        """G(z, G(z_t, I)) of Eq. 8, with batch statistics but no running-statistics update.

        The cycle pass runs the encoder (both branches, since the ConvFLUs join them), f_tra
        and f_dec in training mode on *synthetic* faces. Left to update the batch-norm
        running statistics as well, it would average synthetic-face statistics into the ones
        recognition uses on real faces at test time: on SynthFace at a short budget, whose
        syntheses are still blurred, w/o ConvFLU then scored 22.5 % on its own training
        faces in inference mode against 57.6 % in training (docs/FIDELITY.md). So the
        running statistics are read before the pass and written back after it: they
        estimate the real faces' statistics (and the first synthesis pass's, for f_dec).
        Automatic control dependencies order the read, the layers' updates and the
        write-back on each variable as written here.
        """
        statistics = self._running_statistics
        saved = [tf.identity(variable) for variable in statistics]
        cycled = self._generate(self.encoder(synthetic, training=True)["fes_features"], labels,
                                training=True)
        for variable, value in zip(statistics, saved, strict=True):
            variable.assign(value)
        return cycled

    @property
    def _running_statistics(self):
        """The non-trainable variables of the encoder, f_tra and f_dec: their batch norms'
        moving means and variances (a frozen weight among them is written back unchanged)."""
        return [variable for part in (self.encoder, self.transformer, self.decoder)
                for variable in part.non_trainable_variables]

    def _identity_loss(self, synthetic, target_images):
        """Eq. 9 on Light CNN features of G(z_t, I) and I_t; 0 without identity network."""
        if self.identity_network is None:
            return tf.constant(0.0)
        side = self.identity_input_size
        features = [self.identity_network(identity_network_input(x, self.normalization, side),
                                          training=False)
                    for x in (synthetic, target_images)]
        return squared_error(features[0], features[1], self.squared_error_reduction)

    def test_step(self, data):
        labels, mask = self._labels(data)
        logits = self(data["image"], training=False)["expression_logits"]
        loss = self._classification_loss(labels, logits, sample_weight=mask)
        self._trackers["loss"].update_state(loss)
        self._trackers["classification_loss"].update_state(loss)
        self._accuracy.update_state(labels, logits, sample_weight=mask)
        names = ("loss", "classification_loss", "accuracy")
        return {m.name: m.result() for m in self.metrics if m.name in names}

    def get_config(self):
        config = super().get_config()
        config.update(
            num_classes=self.num_classes, image_size=list(self.image_size),
            sharing=self.sharing, synthesis=self.synthesis,
            encoder_widths=self.encoder_widths, decoder_widths=self.decoder_widths,
            classifier_units=self.classifier_units,
            transformer_channels=self.transformer_channels,
            transformer_upsamplings=self.transformer_upsamplings,
            discriminator_widths=self.discriminator_widths,
            batch_norm_momentum=self.batch_norm_momentum, normalization=self.normalization,
            gan_weight=self.gan_weight, reconstruction_weight=self.reconstruction_weight,
            cycle_weight=self.cycle_weight, identity_weight_start=self.identity_weight_start,
            identity_weight_end=self.identity_weight_end,
            generator_objective=self.generator_objective,
            squared_error_reduction=self.squared_error_reduction,
            identity_input_size=self.identity_input_size,
            train_synthesis=self.train_synthesis,
        )
        return config
