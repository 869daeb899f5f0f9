"""Data: the record schema, face cropping, source importers, SynthFace and the tf.data pipeline."""
