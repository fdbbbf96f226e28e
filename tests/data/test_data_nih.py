"""NIHChestXray on fixtures that reproduce each quirk of the real files, its errors, and the
synthetic sample written by make_sample."""

from __future__ import annotations

import re
import struct
import warnings
import zlib

import numpy as np
import pytest
from PIL import Image

from kinone.data import DataLoader
from kinone.data import transforms as T
from kinone.data.datasets import FINDINGS, NIHChestXray, make_sample
from kinone.data.datasets.nih import NIHDataError
from kinone.data.datasets.nih_sample import _SIGNALS, SAMPLE_PREVALENCE, _draw_chest

V2020_HEADER = (
    "Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,View Position,"
    "OriginalImage[Width,Height],OriginalImagePixelSpacing[x,y]"
)
# (name, labels, patient, age); patients 3 and 7 form the test list, as in the real list's start
ROWS = [
    ("00000001_000.png", "Cardiomegaly", 1, 58),
    ("00000001_001.png", "Cardiomegaly|Emphysema", 1, 58),
    ("00000002_000.png", "No Finding", 2, 81),
    ("00000003_000.png", "Hernia", 3, 74),
    ("00000003_001.png", "Effusion|Infiltration|Pleural_Thickening", 3, 75),
    ("00000004_000.png", "Mass|Nodule", 4, 82),
    ("00000005_000.png", "No Finding", 5, 69),
    ("00000006_000.png", "Atelectasis", 6, 45),
    ("00000007_000.png", "No Finding", 7, 30),
    ("00000008_000.png", "Pneumothorax", 8, 50),
    ("00000009_000.png", "Pneumonia|Consolidation", 9, 61),
    ("00000010_000.png", "Edema|Fibrosis", 10, 7),
    ("00000011_000.png", "No Finding", 11, 40),
    ("00000012_000.png", "Infiltration", 12, 33),
]
TEST_PATIENTS = {3, 7}


def gray_of(name: str) -> int:
    return 10 * int(name[:8]) + int(name[9:12])


def write_dataset(root, variant="v2020", layout="kaggle", modes=None, rows=ROWS, list_newline="\n"):
    """Write a small dataset in the real layout; every image is one flat gray level (gray_of)."""
    modes = modes or {}
    root.mkdir(parents=True, exist_ok=True)
    if variant == "v2020":
        lines = [V2020_HEADER] + [
            f"{n},{labels},{n[9:12].lstrip('0') or '0'},{p},{age},M,PA,2500,2048,0.143,0.143"
            for n, labels, p, age in rows
        ]
        (root / "Data_Entry_2017_v2020.csv").write_bytes(("\n".join(lines) + "\n").encode())
    else:  # the older file: trailing comma, CRLF, zero-padded ids and follow-ups, ages like 058Y
        lines = [V2020_HEADER + ","] + [
            f"{n},{labels},{n[9:12]},{p:08d},{age:03d}Y,F,AP,2500,2048,0.168,0.168," for n, labels, p, age in rows
        ]
        (root / "Data_Entry_2017.csv").write_bytes(("\r\n".join(lines) + "\r\n").encode())
    test = [n for n, _, p, _ in rows if p in TEST_PATIENTS]
    train_val = [n for n, _, p, _ in rows if p not in TEST_PATIENTS]
    (root / "train_val_list.txt").write_bytes(list_newline.join(train_val).encode())  # no trailing newline
    (root / "test_list.txt").write_bytes(list_newline.join(test).encode())
    for i, (name, *_) in enumerate(rows):
        folder = {
            "kaggle": root / f"images_{1 + i * 3 // len(rows):03d}" / "images",
            "nih": root / "images",
            "flat": root,
        }[layout]
        folder.mkdir(parents=True, exist_ok=True)
        write_image(folder / name, gray_of(name), modes.get(name, "L"))
    return root


def write_image(path, gray, mode="L"):
    pixels = np.full((8, 8), gray, dtype=np.uint8)
    if mode == "RGBA":
        image = Image.fromarray(np.dstack([pixels, pixels, pixels, np.full_like(pixels, 255)]))
    elif mode == "RGB":
        image = Image.fromarray(np.dstack([pixels, pixels, pixels]))
    elif mode == "I;16":
        image = Image.fromarray(pixels.astype(np.uint16) * 257)
    else:
        image = Image.fromarray(pixels)
    image.save(path)
    assert Image.open(path).mode == mode


def label_of(labels: str) -> np.ndarray:
    return np.array([f in labels.split("|") for f in FINDINGS], dtype=np.float32)


# ------------------------------------------------------------------ reading the real layout
def test_findings_are_wang_et_al_order():
    assert NIHChestXray.FINDINGS == FINDINGS == (
        "Atelectasis", "Cardiomegaly", "Effusion", "Infiltration", "Mass", "Nodule", "Pneumonia",
        "Pneumothorax", "Consolidation", "Edema", "Emphysema", "Fibrosis", "Pleural_Thickening", "Hernia",
    )  # fmt: skip


@pytest.mark.parametrize("variant", ["v2020", "2017"])
@pytest.mark.parametrize("layout", ["kaggle", "nih", "flat"])
def test_both_csv_variants_in_every_folder_layout(tmp_path, variant, layout):
    root = write_dataset(tmp_path / "nih", variant, layout)
    test = NIHChestXray(root, "test")
    assert test.image_names == ["00000003_000.png", "00000003_001.png", "00000007_000.png"]
    assert test.csv_path.name == ("Data_Entry_2017_v2020.csv" if variant == "v2020" else "Data_Entry_2017.csv")
    rows = {n: (labels, p, age) for n, labels, p, age in ROWS}
    for i, name in enumerate(test.image_names):
        assert np.array_equal(test.labels[i], label_of(rows[name][0]))
    assert test.labels.dtype == np.float32 and test.labels.shape == (3, 14)
    assert test.labels[2].sum() == 0  # "No Finding": all zeros
    assert test.patient_ids.tolist() == [3, 3, 7] and test.patient_ids.dtype == np.int64
    assert test.ages.tolist() == [74, 75, 30]  # '074Y' in the older file
    image, label = test[1]
    assert image.mode == "L" and image.size == (8, 8) and np.asarray(image)[0, 0] == gray_of("00000003_001.png")
    assert label.dtype == np.float32 and np.array_equal(label, label_of("Effusion|Infiltration|Pleural_Thickening"))
    train, val = NIHChestXray(root, "train", val_fraction=0.25), NIHChestXray(root, "val", val_fraction=0.25)
    assert sorted(train.image_names + val.image_names) == sorted(n for n, _, p, _ in ROWS if p not in TEST_PATIENTS)


def test_split_lists_with_crlf_and_no_trailing_newline(tmp_path):
    root = write_dataset(tmp_path / "nih", list_newline="\r\n")
    assert not (root / "test_list.txt").read_bytes().endswith(b"\n")
    assert len(NIHChestXray(root, "test")) == 3


def test_rgba_rgb_and_16_bit_images_become_8_bit_grayscale(tmp_path):
    modes = {"00000003_000.png": "RGBA", "00000003_001.png": "RGB", "00000007_000.png": "I;16"}
    test = NIHChestXray(write_dataset(tmp_path / "nih", modes=modes), "test")
    for i, name in enumerate(test.image_names):
        image = test[i][0]
        assert image.mode == "L"
        assert np.all(np.asarray(image) == gray_of(name)), name


def test_transform_and_loader(tmp_path):
    transform = T.Compose([T.Resize(4), T.ToArray()])
    train = NIHChestXray(write_dataset(tmp_path / "nih"), "train", transform=transform, val_fraction=0.0)
    image, label = train[0]
    assert image.shape == (1, 4, 4) and image.dtype == np.float32
    images, labels = next(iter(DataLoader(train, batch_size=4)))
    assert images.shape == (4, 1, 4, 4) and labels.shape == (4, 14) and labels.dtype == np.float32
    assert train[-1][1].shape == (14,)
    with pytest.raises(IndexError, match="out of range"):
        train[len(train)]
    assert "split='train'" in repr(train)


# ------------------------------------------------------------------ splits and weights
def test_validation_is_carved_by_patient_deterministically(tmp_path):
    root = write_dataset(tmp_path / "nih")
    splits = {s: NIHChestXray(root, s, val_fraction=0.3, seed=1) for s in ("train", "val", "test")}
    patients = {s: set(d.patient_ids.tolist()) for s, d in splits.items()}
    assert not patients["train"] & patients["val"] and not patients["train"] & patients["test"]
    assert not patients["val"] & patients["test"]
    assert len(patients["val"]) == 3  # round(0.3 x 10 train_val patients)
    assert NIHChestXray(root, "val", val_fraction=0.3, seed=1).image_names == splits["val"].image_names
    others = [set(NIHChestXray(root, "val", val_fraction=0.3, seed=s).patient_ids.tolist()) for s in range(2, 6)]
    assert any(o != patients["val"] for o in others)
    assert len(NIHChestXray(root, "val", val_fraction=0.0)) == 0
    with pytest.raises(ValueError, match="val_fraction"):
        NIHChestXray(root, "val", val_fraction=1.0)
    with pytest.raises(ValueError, match="split"):
        NIHChestXray(root, "validation")


def test_patients_in_both_lists_are_kept_out_of_train_and_val(tmp_path):
    root = write_dataset(tmp_path / "nih")
    (root / "train_val_list.txt").write_text((root / "train_val_list.txt").read_text() + "\n00000007_000.png")
    (root / "test_list.txt").write_text("00000003_000.png\n00000003_001.png")
    (root / "train_val_list.txt").write_text((root / "train_val_list.txt").read_text() + "\n00000003_000.png")
    with pytest.warns(
        UserWarning, match="1 images of train_val_list.txt belong to patients who are also in test_list.txt"
    ):
        train = NIHChestXray(root, "train", val_fraction=0.0)
    assert 3 not in train.patient_ids and 7 in train.patient_ids


def test_pos_weight_is_negatives_over_positives(tmp_path):
    train = NIHChestXray(write_dataset(tmp_path / "nih"), "train", val_fraction=0.0)
    positives = train.labels.sum(0)
    expected = np.where(positives > 0, (len(train) - positives) / np.maximum(positives, 1), 1.0)
    assert train.pos_weight().dtype == np.float32 and np.allclose(train.pos_weight(), expected)
    assert train.pos_weight()[FINDINGS.index("Cardiomegaly")] == pytest.approx((11 - 2) / 2)
    assert train.pos_weight()[FINDINGS.index("Hernia")] == 1.0  # no positive in train


# ------------------------------------------------------------------ errors
def test_wrong_root_says_what_was_expected(tmp_path):
    with pytest.raises(FileNotFoundError, match="is not a folder.*Data_Entry_2017_v2020.csv"):
        NIHChestXray(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("x")
    with pytest.raises(
        FileNotFoundError,
        match=r"no Data_Entry_2017_v2020.csv or Data_Entry_2017.csv .* holds notes.txt.*train_val_list.txt",
    ):
        NIHChestXray(tmp_path / "empty")
    root = write_dataset(tmp_path / "nih")
    (root / "test_list.txt").unlink()
    with pytest.raises(FileNotFoundError, match="test_list.txt is missing"):
        NIHChestXray(root, "test")


def test_missing_csv_column_is_named(tmp_path):
    root = write_dataset(tmp_path / "nih")
    csv = root / "Data_Entry_2017_v2020.csv"
    csv.write_text(csv.read_text().replace("Patient ID", "PatientId"))
    with pytest.raises(ValueError, match=r"Data_Entry_2017_v2020.csv has no column 'Patient ID'"):
        NIHChestXray(root, "test")


def test_unknown_finding_names_the_line_the_image_and_every_expected_name(tmp_path):
    root = write_dataset(tmp_path / "nih")
    csv = root / "Data_Entry_2017_v2020.csv"
    csv.write_text(csv.read_text().replace("Hernia", "Infiltrate"))
    with pytest.raises(NIHDataError) as raised:
        NIHChestXray(root, "test")
    message = str(raised.value)
    assert "\n" not in message
    assert re.search(
        r"Data_Entry_2017_v2020.csv line 5 \(image '00000003_000.png'\) "
        r"has unknown finding 'Infiltrate' in 'Infiltrate'",
        message,
    ), message
    assert all(repr(name) in message for name in FINDINGS + ("No Finding",)), message


def test_an_empty_name_between_bars_is_an_unknown_finding_on_its_line(tmp_path):
    root = write_dataset(tmp_path / "nih")
    csv = root / "Data_Entry_2017_v2020.csv"
    csv.write_text(csv.read_text().replace("Mass|Nodule", "Mass||Nodule"))
    expected = r"line 7 \(image '00000004_000.png'\) has unknown finding '' in 'Mass\|\|Nodule'"
    with pytest.raises(NIHDataError, match=expected):
        NIHChestXray(root, "test")


@pytest.mark.parametrize("variant", ["v2020", "2017"])
def test_truncated_csv_names_the_line_and_the_fields_expected(tmp_path, variant):
    """A download cut mid-row: the last line has 3 of the 11 fields (today: "unknown finding ''")."""
    root = write_dataset(tmp_path / "nih", variant)
    csv = root / ("Data_Entry_2017_v2020.csv" if variant == "v2020" else "Data_Entry_2017.csv")
    data = csv.read_bytes().rstrip(b"\r\n")
    last = data.rindex(b"\n") + 1
    csv.write_bytes(data[:last] + b",".join(data[last:].split(b",")[:3]))  # 00000012_000.png,Infiltration,0
    with pytest.raises(NIHDataError) as raised:
        NIHChestXray(root, "test")
    assert str(raised.value) == (
        f"NIHChestXray: {csv} line 15 has 3 of 11 fields (truncated file?); expected the 11 fields of its header"
    )


def test_a_short_row_in_the_middle_is_named_too(tmp_path):
    root = write_dataset(tmp_path / "nih")
    csv = root / "Data_Entry_2017_v2020.csv"
    lines = csv.read_text().split("\n")
    lines[4] = ",".join(lines[4].split(",")[:2])  # 00000003_000.png,Hernia
    csv.write_text("\n".join(lines))
    with pytest.raises(NIHDataError, match=r"line 5 has 2 of 11 fields \(damaged row\?\)"):
        NIHChestXray(root, "test")


def test_older_file_rows_without_the_trailing_comma_are_complete(tmp_path):
    root = write_dataset(tmp_path / "nih", "2017")
    csv = root / "Data_Entry_2017.csv"
    csv.write_bytes(csv.read_bytes().replace(b",\r\n", b"\r\n"))  # 11 fields under a 12-field header
    assert len(NIHChestXray(root, "test")) == 3


def test_empty_finding_labels_on_a_complete_row_names_the_line(tmp_path):
    root = write_dataset(tmp_path / "nih")
    csv = root / "Data_Entry_2017_v2020.csv"
    csv.write_text(csv.read_text().replace("00000003_000.png,Hernia,", "00000003_000.png,,"))
    with pytest.raises(
        NIHDataError,
        match=r"Data_Entry_2017_v2020.csv line 5 \(image '00000003_000.png'\) has an empty 'Finding Labels'; "
        r"expected '\|'-separated names from \['Atelectasis'",
    ):
        NIHChestXray(root, "test")


def test_a_blank_line_does_not_shift_the_line_named(tmp_path):
    root = write_dataset(tmp_path / "nih")
    csv = root / "Data_Entry_2017_v2020.csv"
    csv.write_text(csv.read_text().replace("\n00000002_000.png", "\n\n00000002_000.png").replace("Hernia", "Hernias"))
    with pytest.raises(NIHDataError, match=r"line 6 \(image '00000003_000.png'\) has unknown finding 'Hernias'"):
        NIHChestXray(root, "test")


def test_an_image_twice_in_the_csv_or_a_bad_patient_id_names_the_line(tmp_path):
    root = write_dataset(tmp_path / "nih")
    csv = root / "Data_Entry_2017_v2020.csv"
    text = csv.read_text()
    csv.write_text(text.replace("00000002_000.png", "00000001_001.png"))
    with pytest.raises(NIHDataError, match=r"_v2020.csv line 4 lists image '00000001_001.png' a second time"):
        NIHChestXray(root, "test")
    csv.write_text(text.replace("No Finding,0,2,", "No Finding,0,two,"))
    expected = r"line 4 \(image '00000002_000.png'\) has 'Patient ID' 'two'; expected an integer id"
    with pytest.raises(NIHDataError, match=expected):
        NIHChestXray(root, "test")


def test_image_listed_but_absent_from_the_csv(tmp_path):
    root = write_dataset(tmp_path / "nih")
    (root / "test_list.txt").write_text("00000003_000.png\n00000099_000.png")
    with pytest.raises(
        ValueError, match=r"test_list.txt are not in Data_Entry_2017_v2020.csv, e.g. '00000099_000.png'"
    ):
        NIHChestXray(root, "test")


def test_missing_image_raises_or_is_skipped_and_counted(tmp_path):
    root = write_dataset(tmp_path / "nih", layout="nih")
    (root / "images" / "00000007_000.png").unlink()
    with pytest.raises(
        FileNotFoundError,
        match=r"1 of 3 images of split 'test' not found: '00000007_000.png'; .*"
        r"\(pass skip_missing=True, or --skip-missing to kinone-train, to train without them\)$",
    ):
        NIHChestXray(root, "test")
    with pytest.warns(UserWarning, match=r"skipped 1 of 3 images of split 'test'"):
        test = NIHChestXray(root, "test", skip_missing=True)
    assert len(test) == 2 and test.num_skipped == 1 and test.skipped == ["00000007_000.png"]
    assert test.labels.shape == (2, 14) and test.patient_ids.tolist() == [3, 3]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        NIHChestXray(root, "train", skip_missing=True)  # nothing missing there: no warning


def test_unreadable_or_vanished_png_names_the_file(tmp_path):
    root = write_dataset(tmp_path / "nih", layout="nih")
    (root / "images" / "00000003_001.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    test = NIHChestXray(root, "test")
    with pytest.raises(OSError, match=r"cannot read image .*00000003_001.png"):
        test[1]
    (root / "images" / "00000007_000.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"00000007_000.png is missing"):
        test[2]


def test_a_name_listed_twice_in_a_split_file_is_kept_once_and_reported(tmp_path):
    root = write_dataset(tmp_path / "nih")
    names = (root / "train_val_list.txt").read_text().split("\n")
    (root / "train_val_list.txt").write_text("\n".join(names + names[:2] + names[:1]))
    with pytest.warns(UserWarning) as record:
        train = NIHChestXray(root, "train", val_fraction=0.0)
    messages = [str(w.message) for w in record]
    assert messages == [
        f"NIHChestXray: {root / 'train_val_list.txt'} lists 2 names more than once (each kept once): "
        "'00000001_000.png', '00000001_001.png'"
    ]
    assert len(train) == 11 and sorted(train.image_names) == sorted(names)
    assert train.duplicate_names == ["00000001_000.png", "00000001_001.png"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        test = NIHChestXray(root, "test")  # test_list.txt has no duplicate: no warning
    assert test.duplicate_names == []


def test_many_duplicates_show_the_first_few_and_the_count(tmp_path):
    root = write_dataset(tmp_path / "nih")
    names = (root / "train_val_list.txt").read_text().split("\n")
    (root / "train_val_list.txt").write_text("\n".join(names + names))
    expected = r"lists 11 names more than once \(each kept once\): '00000001_000.png', .*, \.\.\. \(6 more\)$"
    with pytest.warns(UserWarning, match=expected):
        train = NIHChestXray(root, "train", val_fraction=0.0)
    assert len(train.duplicate_names) == 11 and len(train) == 11


def test_a_decompression_bomb_names_the_image(tmp_path, monkeypatch):
    test = NIHChestXray(write_dataset(tmp_path / "nih", layout="nih"), "test")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 16)  # the 8 x 8 fixtures are 4x the limit: Pillow refuses
    expected = r"NIHChestXray: image .*00000003_001.png is too large to decode safely: .*64 pixels"
    with pytest.raises(OSError, match=expected) as raised:
        test[1]
    assert isinstance(raised.value.__cause__, Image.DecompressionBombError)


def test_a_decompression_bomb_in_a_worker_names_the_image(tmp_path):
    root = write_dataset(tmp_path / "nih", layout="nih")
    bomb = root / "images" / "00000007_000.png"
    png = bomb.read_bytes()  # the same PNG with an IHDR (CRC recomputed) declaring 100,000 x 100,000 pixels
    chunk = b"IHDR" + struct.pack(">II", 100_000, 100_000) + png[24:29]
    bomb.write_bytes(png[:8] + struct.pack(">I", 13) + chunk + struct.pack(">I", zlib.crc32(chunk)) + png[33:])
    loader = DataLoader(NIHChestXray(root, "test", transform=T.ToArray()), batch_size=3, num_workers=2)
    with pytest.raises(OSError, match=r"NIHChestXray: image .*00000007_000.png is too large to decode safely"):
        next(iter(loader))


def test_image_paths_are_every_file_the_split_reads(tmp_path):
    root = write_dataset(tmp_path / "nih", layout="kaggle")
    train = NIHChestXray(root, "train", val_fraction=0.0)
    paths = train.image_paths()
    assert paths == [train.image_path(i) for i in range(len(train))]
    assert [p.name for p in paths] == train.image_names and all(p.is_file() for p in paths)
    assert {p.parent.parent.name for p in paths} == {"images_001", "images_002", "images_003"}


# ------------------------------------------------------------------ the synthetic sample
@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    return make_sample(tmp_path_factory.mktemp("sample") / "nih", n_patients=40, image_size=64, seed=3, progress=False)


def test_make_sample_writes_the_real_layout(sample):
    csv = (sample / "Data_Entry_2017_v2020.csv").read_bytes()
    assert csv.startswith((V2020_HEADER + "\n").encode()) and b"\r" not in csv
    names = [line.split(",")[0] for line in csv.decode().splitlines()[1:]]
    assert all(re.fullmatch(r"\d{8}_\d{3}\.png", n) for n in names)
    assert all(len(line.split(",")) == 11 for line in csv.decode().splitlines())
    assert any(n.endswith("_002.png") for n in names)  # several follow-ups per patient
    train_val = (sample / "train_val_list.txt").read_bytes()
    test = (sample / "test_list.txt").read_bytes()
    assert not train_val.endswith(b"\n") and not test.endswith(b"\n")
    assert sorted(train_val.decode().split("\n") + test.decode().split("\n")) == sorted(names)
    folder = sample / "images_001" / "images"
    assert sorted(p.name for p in folder.iterdir()) == sorted(names)
    modes = {Image.open(folder / n).mode for n in names}
    assert modes == {"L", "RGB", "RGBA"}
    assert Image.open(folder / names[0]).size == (64, 64)
    readme = (sample / "README.txt").read_text()
    assert "SYNTHETIC" in readme and "make_sample" in readme and "seed=3" in readme
    with pytest.raises(FileExistsError, match="overwrite=True"):
        make_sample(sample)


def test_make_sample_loads_with_disjoint_patients_and_every_finding_on_both_sides(sample):
    splits = {s: NIHChestXray(sample, s, val_fraction=0.2) for s in ("train", "val", "test")}
    ids = {s: set(d.patient_ids.tolist()) for s, d in splits.items()}
    assert not ids["train"] & ids["test"] and not ids["val"] & ids["test"] and not ids["train"] & ids["val"]
    train_val = np.concatenate([splits["train"].labels, splits["val"].labels])
    assert np.all(train_val.sum(0) >= 3) and np.all(splits["test"].labels.sum(0) >= 3)
    every = np.concatenate([train_val, splits["test"].labels])
    no_finding = (every.sum(1) == 0).mean()
    assert 0.25 < no_finding < 0.65 and (every.sum(1) >= 2).any()
    assert every.mean(0)[FINDINGS.index("Infiltration")] > every.mean(0)[FINDINGS.index("Hernia")]
    assert len(SAMPLE_PREVALENCE) == 14


def test_make_sample_is_deterministic(sample, tmp_path):
    again = make_sample(tmp_path / "again", n_patients=40, image_size=64, seed=3, progress=False)
    assert (again / "Data_Entry_2017_v2020.csv").read_bytes() == (sample / "Data_Entry_2017_v2020.csv").read_bytes()
    some = sorted((sample / "images_001" / "images").iterdir())[5].name
    assert (again / "images_001" / "images" / some).read_bytes() == (
        sample / "images_001" / "images" / some
    ).read_bytes()


def test_every_finding_adds_a_strong_signal_at_its_own_place():
    """Mean of 20 synthetic images with one finding minus the mean of 20 without any: the
    finding's pattern stands far above the noise, centred where the generator puts it (what
    lets a small CNN learn every finding)."""
    size = 64
    grid = (np.arange(size, dtype=np.float32) + 0.5) / size
    rng = np.random.default_rng(0)

    def mean_image(findings):
        return np.mean(
            [_draw_chest(np.array(findings, dtype=int), grid, rng).astype(np.float32) for _ in range(20)], axis=0
        )

    healthy = mean_image([])
    for f, name in enumerate(FINDINGS):
        pattern, cx, cy, rx, ry, amplitude = _SIGNALS[name]
        signal = (mean_image([f]) - healthy) * (-1 if amplitude < 0 else 1)
        assert signal.max() > 25 and signal.max() > 6 * np.median(np.abs(signal)), name
        y, x = (np.array(np.unravel_index(np.argmax(signal), signal.shape)) + 0.5) / size
        if pattern not in ("heart", "lungs"):
            assert min(np.hypot(x - cx, y - cy), np.hypot(x - (1 - cx), y - cy)) < max(rx, ry) + 0.05, name


def test_sample_through_workers_equals_the_main_process(sample):
    transform = T.Compose(
        [
            T.RandomResizedCrop(32, scale=(0.5, 1.0)),
            T.RandomHorizontalFlip(),
            T.RandomRotation(10),
            T.ToArray(),
            T.Normalize([0.5], [0.25]),
        ]
    )
    data = NIHChestXray(sample, "train", transform=transform)

    def run(workers):
        loader = DataLoader(data, batch_size=8, shuffle=True, seed=0, num_workers=workers)
        return [(x.data.copy(), y.data.copy()) for x, y in loader]

    zero, two = run(0), run(2)
    assert len(zero) == len(two) == -(-len(data) // 8)
    for (x0, y0), (x2, y2) in zip(zero, two):
        assert np.array_equal(x0, x2) and np.array_equal(y0, y2)
    assert zero[0][0].shape == (8, 1, 32, 32)


def test_the_sample_writer_lives_in_its_own_module_and_stays_importable_from_nih():
    from kinone.data.datasets import nih, nih_sample

    for name in ("make_sample", "SAMPLE_PREVALENCE", "MIN_POSITIVES"):
        assert getattr(nih, name) is getattr(nih_sample, name)
    assert make_sample is nih_sample.make_sample
    with pytest.raises(AttributeError, match="no attribute 'not_there'"):
        nih.not_there
