"""How close a generator's syntheses are to the real faces they stand for (FERSNet, Zhao
et al. §III-C Eq. 7, measured on unseen faces).

Table V (``synthetic_accuracy``) asks whether a classifier *recognises* the target
expression in a synthesis; it cannot tell a face from a texture the classifier happens to
read one way. This asks the reconstruction question of Eq. 7 on the test identities: for
each labelled face I of identity p and each *other* expression t that p shows among the
scored faces, the synthesis G(t, I) is compared with R(p, t), the mean of p's real faces
with expression t. Two references give the figure its scale:

* ``mean_face_mse``: the mean of all scored faces in place of every synthesis (a
  generator that ignores its input and its target; fitted on the scored faces themselves,
  so it is a strong version of that baseline);
* ``copy_source_mse``: I itself (a generator that ignores the target expression).

A synthesis that is a face of the right person with the right expression scores below
both; noise scores above the mean face. Pixels are compared in [0, 1] units.
"""

import json
from pathlib import Path

import numpy as np

from fermtl_tf.evaluation.runner import _evaluation_dataset
from fermtl_tf.evaluation.synthetic_accuracy import load_generator

RESULTS_FILE = "synthesis_error.json"


def reference_faces(images, identities, expressions):
    """{(identity, expression): mean face} over the given faces."""
    references = {}
    for key in set(zip(identities.tolist(), expressions.tolist(), strict=True)):
        chosen = (identities == key[0]) & (expressions == key[1])
        references[key] = images[chosen].mean(axis=0)
    return references


def synthesis_pairs(identities, expressions, references):
    """(source index, target expression) for every face and every other expression its
    identity shows."""
    shown = {}
    for identity, expression in references:
        shown.setdefault(identity, []).append(expression)
    pairs = [(i, t) for i, (p, e) in enumerate(zip(identities.tolist(), expressions.tolist(),
                                                  strict=True))
             for t in sorted(shown[p]) if t != e]
    return np.asarray(pairs, np.int64).reshape(-1, 2)


def synthesis_error(synthesize, images, identities, expressions, batch_size=64):
    """Mean per-pixel squared error of ``synthesize`` against the real references, with the
    two baselines (module docstring).

    ``images``: [N, H, W, 3] in [0, 1]; ``synthesize(images, targets)`` returns the same
    range. Returns ``{synthesis_mse, copy_source_mse, mean_face_mse, num_pairs,
    num_faces}``.
    """
    images = np.asarray(images, np.float32)
    identities, expressions = np.asarray(identities), np.asarray(expressions)
    references = reference_faces(images, identities, expressions)
    pairs = synthesis_pairs(identities, expressions, references)
    if not len(pairs):
        raise ValueError("synthesis_error: no identity shows two expressions among the faces")
    mean_face = images.mean(axis=0)
    totals = {"synthesis_mse": 0.0, "copy_source_mse": 0.0, "mean_face_mse": 0.0}
    for start in range(0, len(pairs), batch_size):
        sources, targets = pairs[start:start + batch_size].T
        target_faces = np.stack([references[(identities[i], t)]
                                 for i, t in zip(sources, targets, strict=True)])
        synthetic = np.asarray(synthesize(images[sources], targets.astype(np.int32)),
                               np.float32)
        for name, candidate in (("synthesis_mse", synthetic),
                                ("copy_source_mse", images[sources]),
                                ("mean_face_mse", mean_face[None])):
            totals[name] += float(np.sum(np.mean((candidate - target_faces) ** 2,
                                                 axis=(1, 2, 3))))
    results = {name: total / len(pairs) for name, total in totals.items()}
    return {**results, "num_pairs": int(len(pairs)), "num_faces": int(len(images))}


def evaluate_synthesis_error(generator_dir, data_dir, split="test", out_dir=None,
                             batch_size=64):
    """:func:`synthesis_error` of an exported FERSNet (its ``synthesize`` signature) on the
    labelled faces of ``data_dir``'s ``split``; written to ``out_dir``/:data:`RESULTS_FILE`
    when given."""
    export, generator = load_generator(generator_dir)
    parts = {"image": [], "identity": [], "expression": [], "expression_mask": []}
    for batch in _evaluation_dataset(data_dir, {"split": split}, batch_size,
                                     tuple(export["input_size"])).as_numpy_iterator():
        for key, values in parts.items():
            values.append(batch[key])
    data = {key: np.concatenate(values) for key, values in parts.items()}
    labelled = (data["expression_mask"] > 0) & (data["identity"] >= 0)
    results = synthesis_error(
        lambda images, targets: generator.synthesize(images * 255.0, targets)["images"] / 255.0,
        data["image"][labelled] / 255.0, data["identity"][labelled],
        data["expression"][labelled], batch_size)
    results.update(generator_dir=str(generator_dir), data_dir=str(data_dir), split=split)
    if out_dir is not None:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        (Path(out_dir) / RESULTS_FILE).write_text(json.dumps(results, indent=2))
    return results
