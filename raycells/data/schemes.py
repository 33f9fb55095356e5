"""Class schemes as data: the Munich AML scheme (Matek et al. 2019), the PBC scheme (Acevedo et
al. 2020), the PBC file-name prefixes, and the PBC -> AML mapping used for extra training data.

Nothing else in the package spells out a class code list; everything asks this module.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Scheme:
    """A set of class codes with their full names and the groups derived from them."""

    name: str
    """Short name used in manifests, configs and reports ("aml", "pbc")."""
    classes: dict[str, str]
    """Class code -> full name, in alphabetical code order (the order of model outputs)."""
    table_order: tuple[str, ...]
    """The order in which the dataset's reference publication lists the classes."""
    groups: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Named groups of classes whose probabilities are summed into one derived score."""
    counts: dict[str, int] = field(default_factory=dict)
    """Images per class in the complete published dataset."""

    def __post_init__(self) -> None:
        if sorted(self.classes) != sorted(self.table_order):
            raise ValueError(f"scheme {self.name}: table_order must list exactly its classes")
        for group, members in self.groups.items():
            unknown = set(members) - set(self.classes)
            if unknown:
                raise ValueError(f"scheme {self.name}: group {group} names unknown classes {unknown}")

    @property
    def codes(self) -> list[str]:
        """Class codes in model-output order (sorted)."""
        return sorted(self.classes)


AML = Scheme(
    name="aml",
    classes={
        "BAS": "Basophil",
        "EBO": "Erythroblast",
        "EOS": "Eosinophil",
        "KSC": "Smudge cell",
        "LYA": "Lymphocyte (atypical)",
        "LYT": "Lymphocyte (typical)",
        "MMZ": "Metamyelocyte",
        "MOB": "Monoblast",
        "MON": "Monocyte",
        "MYB": "Myelocyte",
        "MYO": "Myeloblast",
        "NGB": "Neutrophil (band)",
        "NGS": "Neutrophil (segmented)",
        "PMB": "Promyelocyte (bilobed)",
        "PMO": "Promyelocyte",
    },
    table_order=(
        "NGS", "NGB", "LYT", "LYA", "MON", "EOS", "BAS", "MYO",
        "PMO", "PMB", "MYB", "MMZ", "MOB", "EBO", "KSC",
    ),
    groups={
        "blast": ("MYO", "MOB"),
        "atypical": ("MYO", "MOB", "MYB", "MMZ", "PMO", "PMB", "EBO", "LYA"),
    },
    counts={
        "NGS": 8484, "LYT": 3937, "MYO": 3268, "MON": 1789, "EOS": 424,
        "NGB": 109, "BAS": 79, "EBO": 78, "PMO": 70, "MYB": 42,
        "MOB": 26, "PMB": 18, "KSC": 15, "MMZ": 15, "LYA": 11,
    },
)

PBC = Scheme(
    name="pbc",
    classes={
        "basophil": "Basophil",
        "eosinophil": "Eosinophil",
        "erythroblast": "Erythroblast",
        "ig": "Immature granulocyte",
        "lymphocyte": "Lymphocyte",
        "monocyte": "Monocyte",
        "neutrophil": "Neutrophil",
        "platelet": "Platelet",
    },
    table_order=(
        "neutrophil", "eosinophil", "basophil", "lymphocyte",
        "monocyte", "ig", "erythroblast", "platelet",
    ),
    counts={
        "basophil": 1218, "eosinophil": 3117, "erythroblast": 1551, "ig": 2895,
        "lymphocyte": 1214, "monocyte": 1420, "neutrophil": 3329, "platelet": 2348,
    },
)

SCHEMES = {scheme.name: scheme for scheme in (AML, PBC)}

PBC_FINE_LABELS: dict[str, tuple[str, str]] = {
    # file-name prefix -> (class folder, full name)
    "BA": ("basophil", "Basophil"),
    "EO": ("eosinophil", "Eosinophil"),
    "ERB": ("erythroblast", "Erythroblast"),
    "PMY": ("ig", "Promyelocyte"),
    "MY": ("ig", "Myelocyte"),
    "MMY": ("ig", "Metamyelocyte"),
    "IG": ("ig", "Immature granulocyte (unspecified)"),
    "LY": ("lymphocyte", "Lymphocyte"),
    "MO": ("monocyte", "Monocyte"),
    "SNE": ("neutrophil", "Neutrophil (segmented)"),
    "BNE": ("neutrophil", "Neutrophil (band)"),
    "NEUTROPHIL": ("neutrophil", "Neutrophil (unspecified)"),
    "PLATELET": ("platelet", "Platelet"),
}
"""The finer labels that PBC file names carry as a prefix (`<PREFIX>_<id>.jpg`)."""

PBC_TO_AML: dict[str, str] = {
    "PMY": "PMO", "MY": "MYB", "MMY": "MMZ", "BNE": "NGB", "SNE": "NGS",
    "BA": "BAS", "ERB": "EBO", "EO": "EOS", "LY": "LYT", "MO": "MON",
}
"""PBC fine label -> AML class, for adding PBC images to the rare AML classes."""

AML_TO_PBC: dict[str, str] = {aml: pbc for pbc, aml in PBC_TO_AML.items()}
"""AML class -> PBC fine label, for scoring a network trained on PBC's fine labels on AML images
(LYA, MYO, PMB, MOB and KSC have no PBC counterpart)."""

MAPPINGS = {"pbc-to-aml": PBC_TO_AML, "aml-to-pbc": AML_TO_PBC}


def scheme_for(labels: set[str] | list[str]) -> Scheme | None:
    """The scheme whose classes include every label given, or None when none does."""
    wanted = set(labels)
    for scheme in SCHEMES.values():
        if wanted and wanted <= set(scheme.classes):
            return scheme
    return None


def scheme_groups(classes: list[str]) -> dict[str, tuple[str, ...]] | None:
    """The class groups (blasts, atypical cells) of the scheme of `classes`, if it has any."""
    scheme = scheme_for(classes)
    return scheme.groups if scheme and scheme.groups else None


def full_names(codes: list[str]) -> dict[str, str]:
    """The full name of each class code (a scheme's class, or a PBC fine label); a code no scheme
    knows is its own name."""
    known = {code: name for scheme in SCHEMES.values() for code, name in scheme.classes.items()}
    known.update({code: name for code, (_, name) in PBC_FINE_LABELS.items()})
    return {code: known.get(code, code) for code in codes}
