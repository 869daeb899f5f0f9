"""The 68-point iBUG / 300-W landmark scheme (0-based indices).

Points are given in image coordinates of a frontal, non-mirrored face, so the points
with the smaller x (image left) belong to the subject's *right* side: 36-41 is the
subject's right eye, 42-47 the subject's left eye. Normalisation points follow the
300-W convention used by Hu et al. (2018) and the DESIGN metrics contract.
"""

import numpy as np

NUM_LANDMARKS = 68

JAW = tuple(range(0, 17))
RIGHT_BROW = tuple(range(17, 22))  # subject's right, image left
LEFT_BROW = tuple(range(22, 27))
NOSE_BRIDGE = tuple(range(27, 31))
NOSE_BASE = tuple(range(31, 36))
RIGHT_EYE = tuple(range(36, 42))  # subject's right, image left
LEFT_EYE = tuple(range(42, 48))
OUTER_LIPS = tuple(range(48, 60))
INNER_LIPS = tuple(range(60, 68))

#: The 49-point IntraFace / AAM scheme of Liu et al. (2017, Sec. 5.1) as 68-point indices:
#: every point but the 17 jaw points and the two inner-mouth corners (60, 64), which
#: IntraFace does not track (its mouth has 12 outer and 6 inner points). Brows 17-26,
#: nose 27-35, eyes 36-47, outer lips 48-59, inner lips 61-63 and 65-67.
LIU49 = tuple(i for i in range(NUM_LANDMARKS) if i not in JAW and i not in (60, 64))

#: Outer eye corners, the inter-ocular normaliser of 300-W.
OUTER_EYE_CORNERS = (36, 45)


def _mirror_permutation():
    """Index map so that ``mirrored[i] = original[perm[i]]`` after a horizontal flip.

    A horizontal flip moves the subject's right eye to where the left eye was, so
    after flipping the x coordinates every point must also take the label of its
    mirror partner. Pairs follow the iBUG annotation order (jaw 0<->16, brows
    17<->26, eyes 36<->45 ..., lips 48<->54 ...); points on the midline map to themselves.
    """
    pairs = [(i, 16 - i) for i in range(8)]
    pairs += [(17 + i, 26 - i) for i in range(5)]
    pairs += [(31, 35), (32, 34)]
    pairs += [(36, 45), (37, 44), (38, 43), (39, 42), (40, 47), (41, 46)]
    pairs += [(48, 54), (49, 53), (50, 52), (59, 55), (58, 56)]
    pairs += [(60, 64), (61, 63), (67, 65)]
    perm = np.arange(NUM_LANDMARKS)
    for a, b in pairs:
        perm[a], perm[b] = b, a
    return perm


#: ``landmarks[MIRROR_PERMUTATION]`` relabels points after a horizontal flip.
MIRROR_PERMUTATION = _mirror_permutation()

#: The five points used for similarity alignment (eye centres, nose tip, mouth corners),
#: in the MTCNN keypoint order: subject's right eye (image left), left eye, nose,
#: mouth right (image left), mouth left.
FIVE_POINT_SOURCES = (RIGHT_EYE, LEFT_EYE, (30,), (48,), (54,))


def five_points(landmarks):
    """Reduce (..., 68, 2) landmarks to the (..., 5, 2) MTCNN keypoint layout."""
    landmarks = np.asarray(landmarks, dtype=np.float64)
    return np.stack([landmarks[..., list(idx), :].mean(axis=-2) for idx in FIVE_POINT_SOURCES], axis=-2)
