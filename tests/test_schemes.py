from raycells.data.schemes import AML, MAPPINGS, PBC, PBC_FINE_LABELS, PBC_TO_AML, scheme_for


def test_aml_scheme_matches_the_paper():
    assert len(AML.classes) == 15
    assert AML.table_order[:3] == ("NGS", "NGB", "LYT")
    assert AML.groups["blast"] == ("MYO", "MOB")
    assert set(AML.groups["atypical"]) == {"MYO", "MOB", "MYB", "MMZ", "PMO", "PMB", "EBO", "LYA"}
    assert sum(AML.counts.values()) == 18365


def test_pbc_scheme_and_fine_labels():
    assert AML.codes == sorted(AML.classes)
    assert len(PBC.classes) == 8
    assert {folder for folder, _ in PBC_FINE_LABELS.values()} == set(PBC.classes)
    assert len(PBC_FINE_LABELS) == 13


def test_pbc_to_aml_maps_known_labels_onto_aml_classes():
    assert MAPPINGS["pbc-to-aml"] is PBC_TO_AML
    assert set(PBC_TO_AML) <= set(PBC_FINE_LABELS)
    assert set(PBC_TO_AML.values()) <= set(AML.classes)
    assert PBC_TO_AML["PMY"] == "PMO" and PBC_TO_AML["BNE"] == "NGB"


def test_aml_to_pbc_is_the_way_back_for_the_classes_pbc_has():
    back = MAPPINGS["aml-to-pbc"]
    assert {pbc: aml for aml, pbc in back.items()} == PBC_TO_AML
    assert back["MYB"] == "MY" and "MYO" not in back and "KSC" not in back


def test_scheme_for_recognises_label_sets():
    assert scheme_for(["MYO", "NGS"]) is AML
    assert scheme_for(["ig", "platelet"]) is PBC
    assert scheme_for(["cat", "dog"]) is None
    assert scheme_for([]) is None
