"""Site validation through the SERVED ensemble: ``dermassist evaluate``.

A labelled folder in any accepted layout (optionally one split of a manifest) goes through a running
DermAssist (``--url``) or an embedded one started for the run, with the thin client SDK, exactly as a
hospital's integration would call it. The report gives segmentation Dice/Jaccard where masks exist;
accuracy, balanced accuracy, macro F1, per-class recall, melanoma ROC AUC, ECE with a reliability
diagram; REFER sensitivity and specificity; the share not assessable; and, with ``--ood``, how well
OOD_SCORE tells a folder of non-dermoscopic images from the labelled ones. Beside the figures, every
image's answer (``images.csv``) and the images a clinician should look at first: the melanomas REFER
missed and the images that came back not assessable.

For a sign-off the report says when (UTC) and against which server it ran, the model version and the REFER threshold
in force (known when evaluate served the repository itself), what its referral figures count, and what its figures
leave out: every labelled image not evaluated (with its diagnosis) and every other file of the image folders, with
the reason. An earlier report is cleared only once the service answers and is ready.
"""
from .config import Answers, EvaluationConfig, EvaluationError
from .run import evaluate

__all__ = ["Answers", "EvaluationConfig", "EvaluationError", "evaluate"]
