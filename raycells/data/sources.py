"""The public datasets raycells knows by name: where they come from, their licence and what to
cite (written into exported model cards, so a network carries its data's terms)."""

from __future__ import annotations

SOURCES: dict[str, dict[str, str]] = {
    "matek-aml": {
        "dataset": "A Single-cell Morphological Dataset of Leukocytes from AML Patients and "
                   "Non-malignant Controls (AML-Cytomorphology_LMU)",
        "licence": "CC BY 3.0",
        "cite": "Matek C., Schwarz S., Marr C., Spiekermann K. (2019). The Cancer Imaging Archive, "
                "doi:10.7937/tcia.2019.36f5o9ld; Matek C. et al., Human-level recognition of "
                "blast cells in acute myeloid leukaemia with convolutional neural networks, Nat "
                "Mach Intell 1, 538-544 (2019).",
    },
    "pbc": {
        "dataset": "A dataset for microscopic peripheral blood cell images for development of "
                   "automatic recognition systems (PBC)",
        "licence": "CC BY 4.0",
        "cite": "Acevedo A., Merino A., Alférez S., Molina Á., Boldú L., Rodellar J. (2020). "
                "Mendeley Data, V1, doi:10.17632/snkd93bnjr.1.",
    },
    "demo-synthetic": {
        "dataset": "raycells' synthetic demo cells (drawn, not photographed)",
        "licence": "MIT, like raycells",
        "cite": "Not real data: never use a network trained on it for cells.",
    },
}


def source_terms(name: str) -> dict[str, str]:
    """What is known of dataset `name` (a manifest's source column); an unknown one says so."""
    return SOURCES.get(name, {"dataset": name, "licence": "unknown: check the data's own terms",
                              "cite": "unknown"})
