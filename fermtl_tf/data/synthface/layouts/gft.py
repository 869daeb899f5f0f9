"""Write SynthFace participants in the documented GFT layout (``data_prep/gft.md``).

``Videos/<video>.avi`` (MJPG) and ``AU_OCC/<video>.csv`` with header
``frame,AU1,AU2,...`` (frames from 1), 0/1 cells and 9 (not codeable) for AU14 on frame 2.
"""

import os

from fermtl_tf.data.synthface.generator import SynthFaceConfig, SynthFaceGenerator
from fermtl_tf.data.synthface.labels import SYNTHFACE_AU_NAMES
from fermtl_tf.data.synthface.layouts.disfa import write_avi

GFT_AUS = (1, 2, 4, 6, 10, 12, 14, 15, 23, 24)


def write_gft(root, num_videos=3, frames=6, seed=0, size=64, plant_bad=False):
    """Write the fixture; return ``{"aus": {(video, frame): {au: 0/1/None}}}``.

    ``plant_bad``: line 3 (frame 2) of the first table has one cell too many.
    """
    generator = SynthFaceGenerator(SynthFaceConfig(seed=seed, image_size=size,
                                                   frames_per_sequence=frames))
    columns = [SYNTHFACE_AU_NAMES.index(f"AU{n}") for n in GFT_AUS]
    truth = {"aus": {}, "videos": [], "bad": []}
    os.makedirs(os.path.join(root, "AU_OCC"), exist_ok=True)
    for v in range(num_videos):
        video = f"{v + 1:03d}_{'ABC'[v % 3]}"
        truth["videos"].append(video)
        sequence = generator.render_sequence(v, 0)
        write_avi(os.path.join(root, "Videos", f"{video}.avi"), [im for im, _ in sequence])
        lines = ["frame," + ",".join(f"AU{n}" for n in GFT_AUS)]
        for frame, (_, labels) in enumerate(sequence, start=1):
            values = [int(labels["au"][c]) for c in columns]
            if frame == 2:
                values[GFT_AUS.index(14)] = 9
            truth["aus"][(video, frame)] = {
                au: (None if x == 9 else x) for au, x in zip(GFT_AUS, values, strict=True)}
            lines.append(f"{frame}," + ",".join(map(str, values)))
        if plant_bad and v == 0:
            lines[2] += ",0"
            truth["bad"].append((video, 2))
        with open(os.path.join(root, "AU_OCC", f"{video}.csv"), "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
    return truth
