"""Seeded, parameterised sensor corruptions with a severity 1-5 (NumPy only).

A sensor is more often *degraded* than absent: another microphone, background noise, a smudged lens, low
light. This module corrupts one modality of a split (for evaluation) or of a batch (for training
augmentation) following the ImageNet-C convention: every corruption *kind* has five fixed parameter levels,
severity 1 (mild) to 5 (severe), increasing; :data:`CORRUPTIONS` holds them and
:meth:`Corruption.params` gives the concrete parameter of a severity.

Where a corruption is applied (the ``domain`` of its record; never silently another one):

* ``waveform``: **audio** kinds on a dataset whose rows come from recordings (``av-digits``: ``meta``
  records, per split, the FSDD file of each row in ``audio_files`` and the folder in ``recordings``). The
  recordings are re-read, corrupted as waveforms and re-featurised with the dataset's own ``logmel-v1``
  pipeline (:func:`edgefuse.data.audio.logmel_batch` with ``meta["audio_config"]``). Before corrupting, a few
  rows are re-featurised clean and compared with the stored features, so a changed folder is caught.
* ``features``: audio ``noise``, ``gain`` and ``shift`` on datasets that only hold features
  (``av-digits-synthetic-audio``, ``synthetic``), or when asked for with ``domain="features"``: an
  *approximation* in the standardised log-mel domain (see the table below). ``eq`` and ``clip`` have no
  feature-domain variant and raise.
* ``pixels``: image kinds on the raw 8x8 digits (pixels / 16, in 0..1) of AV-digits, clipped to 0..1. When
  the dataset is PCA-degraded (``degrade_image=k``), the *raw* image is corrupted and then projected with
  the dataset's PCA (fitted on the clean train image rows, as the loader does), i.e. the corruption happens
  at the sensor, before the dataset's degradation; the record says ``pca_components``.
* ``model-input``: image kinds on datasets without raw pixels (``synthetic``: the values are not a 0..1
  image; noise and brightness are then scaled by the clean split's 1st-99th percentile spread and nothing is
  clipped), and the any-modality kinds (``zeros``, ``const``, ``nan``), which replace whole rows of the
  model input.

The any-modality kinds corrupt a *fraction of the rows* given by the severity (the rows of a lower severity
are a subset of those of a higher one). ``nan`` rows must never be fused: the runtime rejects NaN in a
present row (``edgefuse.runtime`` raises ``InputError``), so every result carries a per-row ``valid`` flag
per modality (``False`` where a row holds NaN/Inf) and callers mark those rows absent.

Determinism: the same ``seed`` gives the same corruption. Each row's random draws come from its own stream
keyed by ``(seed, modality, kind, row)`` and not by the severity, so the severities of a seed share the same
noise (only its scale changes) and a row's corruption does not depend on the other rows. The random
microphone of ``eq`` is one filter per seed for a whole split (one device, one microphone); ``augment``
draws one per row.

Parameter table (``CORRUPTIONS[modality][kind].levels[severity - 1]``):

=========  ==========  ================================================  =====================================
modality   kind        parameter                                         severity 1 .. 5
=========  ==========  ================================================  =====================================
audio      noise       white Gaussian noise at an SNR (dB)               20, 15, 10, 5, 0
audio      gain        attenuation (dB), then 16-bit re-quantisation     -10, -20, -30, -40, -50
audio      eq          band (Hz) and a random bell (+-dB): another mic   100-3600/3, 200-3200/6, 300-2800/9,
                                                                         450-2300/12, 600-1800/15
audio      shift       time shift (ms) within the feature window         25, 50, 100, 200, 300
audio      clip        clip at a fraction of the peak                    0.5, 0.3, 0.2, 0.1, 0.05
image      noise       Gaussian noise, sigma (fraction of the range)      0.08, 0.12, 0.18, 0.26, 0.38
image      blur        Gaussian blur, sigma (pixels)                     0.5, 0.75, 1.0, 1.25, 1.5
image      occlusion   square of zeros, side (fraction of min(H, W))      0.25, 0.375, 0.5, 0.625, 0.75
image      contrast    contrast factor around the image mean             0.4, 0.3, 0.2, 0.1, 0.05
image      brightness  offset (fraction of the range)                    0.1, 0.2, 0.3, 0.4, 0.5
any        zeros       fraction of rows set to 0                         0.2, 0.4, 0.6, 0.8, 1.0
any        const       fraction of rows set to a constant                0.2, 0.4, 0.6, 0.8, 1.0
any        nan         fraction of rows set to NaN (valid=False)         0.2, 0.4, 0.6, 0.8, 1.0
=========  ==========  ================================================  =====================================

Audio feature-domain variants (``domain: "features"``, an approximation, labelled as such; the
noise and gain levels are calibrated so that on AV-digits' test split (speaker theo) the mean L2 distance
from the clean features is within 5 % of the waveform kind's at each severity; shift's is within 17 %;
only the distance is matched: feature noise is i.i.d. over the map, waveform noise mostly fills quiet bins):
``noise``: Gaussian noise of sigma = 0.1, 0.135, 0.17, 0.2, 0.225 times the row's standard deviation, then
the row is re-standardised (to its own clean mean and standard deviation: 0 and 1 for ``logmel-v1``);
``gain``: values below the row's q-quantile (q = 0.19, 0.35, 0.44, 0.53, 0.68) are raised to it (a quieter
recording sinks under the log floor), then re-standardised; ``shift``: the map moves by 2, 3, 6, 12, 19
frames (about 25-300 ms at hop 16 ms), the vacated frames filled with the row's minimum (silence).

Waveform details: SNR is relative to the power of the whole recording after removing its mean (silent
recordings stay silent). ``gain`` multiplies and re-quantises to 16 bits (a pure gain would be a no-op:
``logmel-v1`` normalises every utterance; the quieter signal loses resolution and falls under the RMS floor
and the log floor). ``eq`` is a zero-phase filter applied with the FFT (order-4 Butterworth magnitude
high-pass and low-pass at the band edges, jittered by up to +-15 % per seed, times a Gaussian bell in
log-frequency, sigma half an octave, of +-the level's dB at a log-uniform centre in 300-3000 Hz). ``shift`` is **padded, not circular**: the
utterance moves by d samples (direction drawn per row) inside the centred feature window, zeros come in
and what passes the window's edge is lost; it is done by zero-padding 2d samples on one side of the
recording, which the centred pad/crop of ``logmel-v1`` turns into a d-sample shift. ``clip`` clips
symmetrically at the fraction of the recording's peak ``max|x|``.
"""

from __future__ import annotations

from edgefuse.data.corruptions.signals import (
    corrupt_array,
    corrupt_audio_features,
    corrupt_waveforms,
    split_waveforms,
)
from edgefuse.data.corruptions.specs import (
    ANY,
    CORRUPTIONS,
    FEATURE_LEVELS,
    SEVERITIES,
    Corruption,
    CorruptionSpec,
    parse_corruptions,
    parse_severities,
)
from edgefuse.data.corruptions.splits import (
    Augmented,
    CorruptedSplit,
    augment,
    augment_split,
    corrupt_split,
)

__all__ = [
    "ANY",
    "CORRUPTIONS",
    "FEATURE_LEVELS",
    "SEVERITIES",
    "Augmented",
    "CorruptedSplit",
    "Corruption",
    "CorruptionSpec",
    "augment",
    "augment_split",
    "corrupt_array",
    "corrupt_audio_features",
    "corrupt_split",
    "corrupt_waveforms",
    "parse_corruptions",
    "parse_severities",
    "split_waveforms",
]
