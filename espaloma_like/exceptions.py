"""One exception hierarchy for everything the package raises on purpose."""

from __future__ import annotations


class EspalomaLikeError(Exception):
    """Base class of every error raised by espaloma_like."""


class MoleculeInputError(EspalomaLikeError, ValueError):
    """The molecule given cannot be used (bad SMILES, bad file, bad chemistry)."""


class UnparsableSmilesError(MoleculeInputError):
    """RDKit could not parse the SMILES string."""


class RadicalError(MoleculeInputError):
    """The molecule has unpaired electrons; closed-shell molecules only."""


class UnsupportedElementError(MoleculeInputError):
    """The molecule contains an element outside H C N O F P S Cl Br I."""


class DisconnectedMoleculeError(MoleculeInputError):
    """The input holds several disconnected fragments where one molecule is expected."""


class UndefinedStereoError(MoleculeInputError):
    """Stereochemistry is undefined where it matters (3D conformers for AM1-BCC or sampling)."""


class MoleculeFileError(MoleculeInputError):
    """A molecule file is missing, empty, unreadable, or of an unsupported type."""


class ValenceMismatchError(MoleculeInputError):
    """An input that lists its hydrogens has atoms whose bonds do not fill their valence.

    Bond orders or formal charges are wrong or missing (benzene written with single bonds, a
    carboxylate without its charge); adding hydrogens would silently make another molecule.
    """


class OutputExistsError(EspalomaLikeError):
    """An output file exists and replacing it was not asked for (``--overwrite``)."""


class ParametrizationError(EspalomaLikeError):
    """A force field could not assign parameters to a molecule."""


class ExternalToolError(EspalomaLikeError, RuntimeError):
    """An external program (antechamber, sqm, parmchk2, tleap) failed."""


class CheckpointError(EspalomaLikeError):
    """A model checkpoint is missing, malformed, or of an unknown format version."""


class DataFormatError(EspalomaLikeError, ValueError):
    """A dataset file does not follow the expected layout."""


class TrainingSetupError(EspalomaLikeError, ValueError):
    """A training run cannot start as configured (no training or no validation molecules)."""


class OutputLockedError(EspalomaLikeError):
    """Another live process is writing into the same output directory."""


class MissingDependencyError(EspalomaLikeError, ImportError):
    """An optional package a feature needs is not installed (the message says which to install)."""


class DeviceUnavailableError(EspalomaLikeError, RuntimeError):
    """A computation was asked to run on a GPU and no usable one is visible."""
