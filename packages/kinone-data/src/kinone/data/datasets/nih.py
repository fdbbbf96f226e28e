"""The NIH ChestX-ray14 dataset (Wang et al., CVPR 2017), read from its real file layout.

    root/
        Data_Entry_2017_v2020.csv     (or the older Data_Entry_2017.csv)
        train_val_list.txt            86,524 names, one per line, no trailing newline
        test_list.txt                 25,596 names
        images/00000001_000.png       NIH's archives extract here; or Kaggle's
        images_001/images/...png      images_001/images/ ... images_012/images/; or flat in root

`NIHChestXray(root, split)` gives `(image, label)` pairs: the image as an 8-bit grayscale PIL
image (after `transform`, if given), the label a float32 multi-hot vector over `FINDINGS`
("No Finding" is all zeros). "train" and "val" are carved from `train_val_list.txt` by
patient, so no patient is on two sides; "test" is `test_list.txt`.

Quirks of the real files, all handled: the v2020 header's bracketed fields split into the
columns `OriginalImage[Width` / `Height]`; the older file ends every line with a comma (an
extra empty column), uses CRLF, zero-pads ids (`00000001`) and writes ages as `058Y`; the split
lists have no trailing newline; some images are RGBA or RGB (converted to grayscale, which is
lossless for their gray pixels), and 16-bit PNGs are scaled to 8 bits.

`make_sample(root)` writes a small synthetic dataset in exactly this layout.
"""

from __future__ import annotations

import math
import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image

from ..dataset import Dataset

FINDINGS = (
    "Atelectasis",
    "Cardiomegaly",
    "Effusion",
    "Infiltration",
    "Mass",
    "Nodule",
    "Pneumonia",
    "Pneumothorax",
    "Consolidation",
    "Edema",
    "Emphysema",
    "Fibrosis",
    "Pleural_Thickening",
    "Hernia",
)
NO_FINDING = "No Finding"
CSV_NAMES = ("Data_Entry_2017_v2020.csv", "Data_Entry_2017.csv")  # the first one found is read
TRAIN_VAL_LIST, TEST_LIST = "train_val_list.txt", "test_list.txt"
IMAGE_COLUMN, LABEL_COLUMN, PATIENT_COLUMN, AGE_COLUMN = "Image Index", "Finding Labels", "Patient ID", "Patient Age"
V2020_HEADER = (
    "Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,View Position,"
    "OriginalImage[Width,Height],OriginalImagePixelSpacing[x,y]"
)
EXPECTED_LAYOUT = (
    f"{CSV_NAMES[0]} (or {CSV_NAMES[1]}), {TRAIN_VAL_LIST}, {TEST_LIST}, and the PNG images in images/, "
    "images_001/images/ ... images_012/images/, or the folder itself"
)
SPLITS = ("train", "val", "test")
EXPECTED_FINDINGS = f"expected '|'-separated names from {list(FINDINGS)} or {NO_FINDING!r}"
SHOWN_NAMES = 5  # how many names an error or warning lists before "... (N more)"


class NIHDataError(ValueError):
    """The dataset's files are wrong (a truncated or damaged CSV, an unknown finding, a split
    list naming an image the CSV lacks), not an argument. A `ValueError`, so code catching that
    still works; kinone-train reports it in one line. Missing files raise `FileNotFoundError`
    and unreadable images `OSError`."""


class NIHChestXray(Dataset):
    """One split of NIH ChestX-ray14.

    Args:
        root: the dataset folder (see the module docstring for its layout).
        split: "train", "val" (both from train_val_list.txt, split by patient) or "test".
        transform: applied to the grayscale PIL image (e.g. `transforms.Compose([...])`).
        val_fraction: the fraction of train_val patients that form "val".
        seed: which patients form "val" (a pure function of the seed and the files).
        skip_missing: drop images of the split whose file is missing (with a warning saying
            how many), instead of raising; with a cache, also those it lists as corrupt.
        cache: a folder written by `kinone-prepare` (or an open `kinone.data.cache.ImageCache`):
            images are read from its memory-mapped shards instead of decoded from the PNGs.
            Splits and labels still come from the CSV and lists in `root`. Each image of the
            split whose PNG is in `root` must be in the cache with the same size and mtime
            (else `CacheMismatch`, a `ValueError`, with the reason); an image whose PNG is gone
            is read from the cache alone (a cache outlives the 42 GB of PNGs).
            A sample is then a uint8 (1, S, S) array (CHW, as `ToArray` would shape it, ready for
            `default_collate` and `kinone.data.batch_transforms`), or `transform` applied to
            the uint8 (S, S) array (the PIL transforms take arrays).

    Attributes: `image_names` (file names, in split-file order), `cache` (the ImageCache or None), `labels` (N x 14 float32),
    `patient_ids` (int64), `ages` (int64 years, -1 where unreadable), `skipped` (names dropped
    by `skip_missing`), `duplicate_names` (names the split's list file holds more than once;
    each is kept once, with a warning), `csv_path`.

    Errors: `NIHDataError` (a `ValueError`) for wrong file contents, `FileNotFoundError` for a
    missing file or image, `OSError` for an image that cannot be read (each names the file).
    """

    FINDINGS = FINDINGS

    def __init__(
        self,
        root,
        split: str = "train",
        transform=None,
        val_fraction: float = 0.1,
        seed: int = 0,
        skip_missing: bool = False,
        cache=None,
    ):
        if split not in SPLITS:
            raise ValueError(f"NIHChestXray: split must be one of {SPLITS}; got {split!r}")
        if not 0.0 <= val_fraction < 1.0:
            raise ValueError(f"NIHChestXray: val_fraction must be in [0, 1); got {val_fraction}")
        self.root = Path(root)
        self.split = split
        self.transform = transform
        self.csv_path = find_data_entry(self.root)
        table = read_data_entry(self.csv_path)
        train_val, train_val_duplicates = read_split_list(self.root / TRAIN_VAL_LIST)
        test, test_duplicates = read_split_list(self.root / TEST_LIST)
        self.duplicate_names: list[str] = test_duplicates if split == "test" else train_val_duplicates
        if self.duplicate_names:
            count = len(self.duplicate_names)
            warnings.warn(
                f"NIHChestXray: {self.root / (TEST_LIST if split == 'test' else TRAIN_VAL_LIST)} lists {count} "
                f"name{'s' if count > 1 else ''} more than once (each kept once): {first_few(self.duplicate_names)}",
                stacklevel=2,
            )

        rows = self._rows_of(
            test if split == "test" else train_val, TEST_LIST if split == "test" else TRAIN_VAL_LIST, table
        )
        if split != "test":
            rows = self._patient_split(rows, self._rows_of(test, TEST_LIST, table), table, val_fraction, seed)

        names = table["names"][rows]
        folders, folder_of = index_images(self.root, names.tolist())
        present = folder_of >= 0
        self.cache = None
        if cache is not None:
            present = self._open_cache(cache, names, folders, folder_of, skip_missing)
        self.skipped = names[~present].tolist()
        if self.skipped and not skip_missing:
            raise FileNotFoundError(
                f"NIHChestXray: {len(self.skipped)} of {len(names)} images of split {split!r} not found: "
                f"{first_few(self.skipped)}; looked in {', '.join(str(f) for f in folders)}, "
                f"expected {EXPECTED_LAYOUT} "
                "(pass skip_missing=True, or --skip-missing to kinone-train, to train without them)"
            )
        if self.skipped:
            warnings.warn(
                f"NIHChestXray: skipped {len(self.skipped)} of {len(names)} images of split {split!r} "
                f"whose files are missing under {self.root} (e.g. {self.skipped[0]!r})",
                stacklevel=2,
            )
        rows = rows[present]
        self.image_names: list[str] = names[present].tolist()
        self.labels: np.ndarray = table["labels"][rows]
        self.patient_ids: np.ndarray = table["patient_ids"][rows]
        self.ages: np.ndarray = table["ages"][rows]
        self._folders = [str(f) for f in folders]
        self._folder_of = folder_of[present].astype(np.int16)

    @property
    def num_skipped(self) -> int:
        return len(self.skipped)

    def __len__(self) -> int:
        return len(self.image_names)

    def __getitem__(self, index: int):
        """`(image, label)`: the transformed grayscale image and a float32 (14,) label."""
        if not -len(self) <= index < len(self):
            raise IndexError(f"NIHChestXray: index {index} out of range for split {self.split!r} of {len(self)} images")
        index = int(index) % len(self)
        if self.cache is not None:
            pixels = np.array(self.cache.image(self.image_names[index]))  # a copy: the sample owns its memory
            image = pixels[None] if self.transform is None else pixels
        else:
            image = load_grayscale(os.path.join(self._folders[self._folder_of[index]], self.image_names[index]))
        if self.transform is not None:
            image = self.transform(image)
        return image, self.labels[index].copy()

    def image_path(self, index: int) -> Path:
        """Where image `index` is on disk."""
        return Path(self._folders[self._folder_of[index]]) / self.image_names[index]

    def image_paths(self) -> list[Path]:
        """Every file this split reads, in index order (for `image_check.check_images`)."""
        folders = [Path(folder) for folder in self._folders]
        return [folders[number] / name for number, name in zip(self._folder_of.tolist(), self.image_names)]

    def pos_weight(self) -> np.ndarray:
        """Negatives / positives per finding, float32 (14,): BCE-with-logits' `pos_weight`.

        A finding without positives in this split gets 1.0 (the weight multiplies only positive
        terms, so its value does not matter there)."""
        positives = self.labels.sum(axis=0, dtype=np.float64)
        negatives = len(self) - positives
        safe = np.where(positives > 0, positives, 1.0)
        return np.where(positives > 0, negatives / safe, 1.0).astype(np.float32)

    def __repr__(self) -> str:
        return (
            f"NIHChestXray(root={str(self.root)!r}, split={self.split!r}, images={len(self)}, "
            f"patients={len(np.unique(self.patient_ids))}, csv={self.csv_path.name!r})"
        )

    # ------------------------------------------------------------------ construction
    def _open_cache(self, cache, names, folders, folder_of, skip_missing) -> np.ndarray:
        """Check the cache against the split's sources; return which images can be read."""
        from ..cache import CacheMismatch, ImageCache

        self.cache = cache if isinstance(cache, ImageCache) else ImageCache(cache)
        names = names.tolist()
        self.cache.check_sources(
            {name: os.path.join(folders[f], name) for name, f in zip(names, folder_of.tolist()) if f >= 0}
        )
        cached = np.array([name in self.cache.images for name in names], dtype=bool)
        corrupt = [name for name in names if name in self.cache.corrupt]
        if corrupt and not skip_missing:
            reason = self.cache.corrupt[corrupt[0]]["reason"]
            raise CacheMismatch(
                f"NIHChestXray: {len(corrupt)} image(s) of split {self.split!r} could not be decoded when the cache "
                f"{self.cache.root} was prepared: {first_few(corrupt)} (the first: {reason}); replace them and run "
                "kinone-prepare --update, or pass skip_missing=True (--skip-missing) to train without them"
            )
        return cached  # a PNG that is present is in it (checked above); one that is not may be too

    def _rows_of(self, names: list[str], list_name: str, table: dict) -> np.ndarray:
        rows = np.array([table["row_of"].get(name, -1) for name in names], dtype=np.int64)
        absent = [name for name, row in zip(names, rows) if row < 0]
        if absent:
            raise NIHDataError(
                f"NIHChestXray: {len(absent)} image(s) listed in {self.root / list_name} are not in "
                f"{self.csv_path.name}, e.g. {absent[0]!r}"
            )
        return rows

    def _patient_split(self, rows, test_rows, table, val_fraction, seed) -> np.ndarray:
        patients = table["patient_ids"]
        in_test = np.isin(patients[rows], patients[test_rows])
        if in_test.any():
            warnings.warn(
                f"NIHChestXray: {int(in_test.sum())} images of {TRAIN_VAL_LIST} belong to patients who are "
                f"also in {TEST_LIST}; they are left out of 'train' and 'val' so that no patient is in two splits",
                stacklevel=3,
            )
            rows = rows[~in_test]
        unique = np.unique(patients[rows])
        n_val = int(round(val_fraction * len(unique)))
        if val_fraction > 0 and n_val == 0 and len(unique) > 1:
            n_val = 1
        val_patients = np.random.default_rng(seed).permutation(unique)[:n_val]
        in_val = np.isin(patients[rows], val_patients)
        return rows[in_val] if self.split == "val" else rows[~in_val]


# ---------------------------------------------------------------------------- files
def find_data_entry(root: Path) -> Path:
    """The metadata CSV in `root` (the v2020 file if both are there)."""
    if not root.is_dir():
        raise FileNotFoundError(f"NIHChestXray: {str(root)!r} is not a folder; expected one holding {EXPECTED_LAYOUT}")
    for name in CSV_NAMES:
        if (root / name).is_file():
            return root / name
    found = sorted(os.listdir(root))
    shown = ", ".join(found[:8]) + (", ..." if len(found) > 8 else "") if found else "nothing"
    raise FileNotFoundError(
        f"NIHChestXray: no {CSV_NAMES[0]} or {CSV_NAMES[1]} in {str(root)!r} (it holds {shown}); "
        f"expected {EXPECTED_LAYOUT}"
    )


def read_data_entry(path: Path) -> dict:
    """Parse Data_Entry_2017[_v2020].csv into arrays: names, labels (N x 14), patient ids, ages.

    Every field is read as text (so `00000001` and `058Y` survive), stripped, then converted.
    Errors name the file and the line (`NIHDataError`): a row with fewer fields than the
    header (a truncated download), an empty or unknown finding, a patient id that is not a
    number, an image listed twice."""
    import pandas as pd  # imported here: pandas takes ~0.5 s to import and workers never need it

    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except (pd.errors.ParserError, UnicodeDecodeError) as error:
        raise NIHDataError(f"NIHChestXray: cannot parse {path}: {error}") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    missing = [c for c in (IMAGE_COLUMN, LABEL_COLUMN, PATIENT_COLUMN) if c not in frame.columns]
    if missing:
        raise NIHDataError(
            f"NIHChestXray: {path} has no column {', '.join(repr(c) for c in missing)}; its columns are "
            f"{list(frame.columns)}; expected the NIH header {V2020_HEADER!r}"
        )
    rows = CsvRows(path, frame)
    rows.check_complete()
    names = frame[IMAGE_COLUMN].str.strip().to_numpy(dtype=object)
    duplicated = pd.Series(names).duplicated().to_numpy()
    if duplicated.any():
        row = int(np.flatnonzero(duplicated)[0])
        raise NIHDataError(f"NIHChestXray: {path} {rows.line(row)} lists image {names[row]!r} a second time")

    labels = read_findings(frame[LABEL_COLUMN], rows)
    patients = pd.to_numeric(frame[PATIENT_COLUMN].str.strip(), errors="coerce")
    if patients.isna().any():
        bad = int(np.flatnonzero(patients.isna().to_numpy())[0])
        raise NIHDataError(
            f"NIHChestXray: {path} {rows.where(bad)} has {PATIENT_COLUMN!r} {frame[PATIENT_COLUMN].iloc[bad]!r}; "
            "expected an integer id"
        )
    ages = np.full(len(frame), -1, dtype=np.int64)
    if AGE_COLUMN in frame.columns:  # '58' (v2020) or '058Y' (2017); 'M' months and 'D' days also seen
        parts = frame[AGE_COLUMN].str.strip().str.extract(r"^(\d+)\s*([YyMmDd]?)$")
        value = pd.to_numeric(parts[0], errors="coerce").to_numpy(dtype=np.float64)
        per_year = parts[1].str.upper().map({"": 1, "Y": 1, "M": 12, "D": 365}).to_numpy(dtype=np.float64)
        years = value / per_year
        ages = np.where(np.isfinite(years), np.floor(np.nan_to_num(years, nan=-1.0)), -1).astype(np.int64)
    return {
        "names": names,
        "row_of": {name: row for row, name in enumerate(names.tolist())},
        "labels": labels,
        "patient_ids": patients.to_numpy(dtype=np.int64),
        "ages": ages,
    }


def read_findings(column, rows: CsvRows) -> np.ndarray:
    """The N x 14 float32 multi-hot labels of the 'Finding Labels' column ('No Finding': zeros)."""
    text = column.str.replace(r"\s*\|\s*", "|", regex=True).str.strip()
    empty = (text == "").to_numpy()
    if empty.any():
        row = int(np.flatnonzero(empty)[0])
        raise NIHDataError(
            f"NIHChestXray: {rows.path} {rows.where(row)} has an empty {LABEL_COLUMN!r}; {EXPECTED_FINDINGS}"
        )
    indicators = text.str.get_dummies(sep="|")
    unknown = sorted(set(indicators.columns) - set(FINDINGS) - {NO_FINDING})
    if unknown:
        row = int(np.flatnonzero(indicators[unknown[0]].to_numpy())[0])
        raise NIHDataError(
            f"NIHChestXray: {rows.path} {rows.where(row)} has unknown finding {unknown[0]!r} in "
            f"{column.iloc[row]!r}; {EXPECTED_FINDINGS}"
        )
    return indicators.reindex(columns=list(FINDINGS), fill_value=0).to_numpy(dtype=np.float32)


class CsvRows:
    """Line numbers and field counts of the CSV's rows, for errors only.

    pandas reads a row cut short as empty strings in its missing fields, and keeps no line
    numbers; so on the error path (rare) the file is read again with the csv module, whose
    records match pandas' rows one to one (both skip blank lines)."""

    def __init__(self, path: Path, frame):
        self.path, self.frame = path, frame
        self.named = [c for c in frame.columns if not c.startswith("Unnamed:")]  # not the 2017 file's trailing ','
        self._records = None

    def records(self) -> list[tuple[int, list[str]]]:
        """`(line number, fields)` of each data row."""
        if self._records is None:
            import csv

            records, line = [], 1
            with open(self.path, newline="", encoding="utf-8-sig") as file:
                reader = csv.reader(file)
                for fields in reader:
                    if fields and not (len(fields) == 1 and not fields[0].strip()):
                        records.append((line, fields))
                    line = reader.line_num + 1
            self._records = records[1:]  # the first is the header
        return self._records

    def line(self, row: int) -> str:
        """'line 57' for the pandas row `row`."""
        records = self.records()
        if len(records) == len(self.frame) and records[row][1][0].strip() == self.frame[IMAGE_COLUMN].iloc[row].strip():
            return f"line {records[row][0]}"
        return f"data row {row + 1}"  # the two readers disagree: say what pandas saw

    def where(self, row: int) -> str:
        """"line 57 (image '00000013_005.png')" for the pandas row `row`."""
        return f"{self.line(row)} (image {self.frame[IMAGE_COLUMN].iloc[row].strip()!r})"

    def check_complete(self) -> None:
        """Raise if a row has fewer fields than the header names. Only counted when some row has an
        empty last field, image, finding or patient id: every whole row of NIH's files has them."""
        key = [self.named[-1], IMAGE_COLUMN, LABEL_COLUMN, PATIENT_COLUMN]
        if not (self.frame[key] == "").to_numpy().any():
            return
        expected = len(self.named)
        records = self.records()
        for number, (line, fields) in enumerate(records):
            if len(fields) < expected:
                cause = "truncated file?" if number == len(records) - 1 else "damaged row?"
                raise NIHDataError(
                    f"NIHChestXray: {self.path} line {line} has {len(fields)} of {expected} fields ({cause}); "
                    f"expected the {expected} fields of its header"
                )


def read_split_list(path: Path) -> tuple[list[str], list[str]]:
    """The image names of train_val_list.txt / test_list.txt (any line endings, with or
    without a final newline), each once, in the file's order; and the names it lists more
    than once."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise FileNotFoundError(
            f"NIHChestXray: {path} is missing; expected {EXPECTED_LAYOUT} in {str(path.parent)!r}"
        ) from None
    listed = [line.strip() for line in text.splitlines() if line.strip()]
    names = list(dict.fromkeys(listed))
    if len(names) == len(listed):
        return names, []
    seen, duplicates = set(), {}
    for name in listed:
        if name in seen:
            duplicates[name] = None
        seen.add(name)
    return names, list(duplicates)


def first_few(names: list[str]) -> str:
    """"'a', 'b', 'c', ... (N more)": the first SHOWN_NAMES names and how many are left out."""
    shown = ", ".join(repr(name) for name in names[:SHOWN_NAMES])
    return shown + (f", ... ({len(names) - SHOWN_NAMES} more)" if len(names) > SHOWN_NAMES else "")


def image_folders(root: Path) -> list[Path]:
    """Where images may be, in the order searched: images/, images_*/images/, images_*/, root."""
    folders = [root / "images"]
    folders += sorted(p for p in root.glob("images_*/images") if p.is_dir())
    folders += sorted(p for p in root.glob("images_*") if p.is_dir())
    folders.append(root)
    return [f for f in folders if f.is_dir()]


def index_images(root: Path, names) -> tuple[list[Path], np.ndarray]:
    """Scan the image folders once: (folders, the folder number of each of `names`, -1 where
    none holds it). The first folder holding a name wins."""
    folders = image_folders(root)
    wanted, found = set(names), {}
    for number, folder in enumerate(folders):
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.name in wanted and entry.name not in found and entry.is_file():
                    found[entry.name] = number
    return folders, np.array([found.get(name, -1) for name in names], dtype=np.int64)


def load_grayscale(path: str) -> Image.Image:
    """Open a PNG as an 8-bit grayscale ('L') image: RGB/RGBA/palette through PIL's luma
    conversion, 16-bit by scaling 0..65535 to 0..255 (PIL's own conversion would clip)."""
    try:
        with Image.open(path) as image:
            image.load()
            return to_grayscale(image)
    except FileNotFoundError:
        raise FileNotFoundError(f"NIHChestXray: image file {path} is missing") from None
    except Image.DecompressionBombError as error:  # raised by Image.open, whose message has no path
        raise OSError(
            f"NIHChestXray: image {path} is too large to decode safely: {error} "
            "(raise PIL.Image.MAX_IMAGE_PIXELS if the file is trusted)"
        ) from error
    except (OSError, ValueError, SyntaxError) as error:  # UnidentifiedImageError is an OSError
        raise OSError(f"NIHChestXray: cannot read image {path}: {error}") from error


def to_grayscale(image: Image.Image) -> Image.Image:
    if image.mode == "L":
        return image
    if image.mode.startswith("I"):  # 'I;16', 'I;16B', 'I' (16-bit grayscale PNGs)
        array = np.clip(np.asarray(image), 0, 65535).astype(np.uint32)
        return Image.fromarray(((array * 255 + 32767) // 65535).astype(np.uint8))
    return image.convert("L")


# ---------------------------------------------------------------------------- sample
# Per-image prevalence of each finding in the real data (v2020 counts / 112,120 images),
# floored at 3% so that every finding has positives in a sample of a few hundred images.
_REAL_COUNTS = (11559, 2776, 13317, 19894, 5782, 6331, 1431, 5302, 4667, 2303, 2516, 1686, 3385, 227)
SAMPLE_PREVALENCE = tuple(max(count / 112_120, 0.03) for count in _REAL_COUNTS)
MIN_POSITIVES = 3  # per finding, in train_val_list and in test_list of a sample

# The synthetic signal of each finding: a pattern at its own place on the chest.
# (pattern, centre x, centre y, radius x, radius y, gray levels added); coordinates are
# fractions of the image side, the patient's left lung is on the image's right.
_SIGNALS = {
    "Atelectasis": ("ellipse", 0.30, 0.68, 0.10, 0.025, 60),  # a plate-like band, left of the image
    "Cardiomegaly": ("heart", 0.56, 0.62, 0.17, 0.13, 0),  # the heart shadow grows by half
    "Effusion": ("ellipse", 0.70, 0.80, 0.12, 0.06, 60),  # fluid at the base of a lung
    "Infiltration": ("patches", 0.30, 0.32, 0.10, 0.10, 70),  # patchy opacities, upper zone
    "Mass": ("ellipse", 0.66, 0.38, 0.065, 0.065, 70),
    "Nodule": ("ellipse", 0.24, 0.48, 0.03, 0.03, 90),
    "Pneumonia": ("cloud", 0.70, 0.58, 0.07, 0.07, 70),
    "Pneumothorax": ("ellipse", 0.76, 0.24, 0.08, 0.07, -50),  # a dark, air-filled region
    "Consolidation": ("box", 0.38, 0.52, 0.06, 0.05, 55),
    "Edema": ("pair", 0.40, 0.42, 0.05, 0.09, 50),  # symmetric haze on both sides of the heart
    "Emphysema": ("lungs", 0.5, 0.45, 0.0, 0.0, -30),  # darker (hyperlucent) lungs
    "Fibrosis": ("grid", 0.66, 0.22, 0.09, 0.07, 60),  # reticular pattern, upper zone
    "Pleural_Thickening": ("ellipse", 0.175, 0.45, 0.02, 0.16, 65),  # along the chest wall
    "Hernia": ("ellipse", 0.50, 0.88, 0.06, 0.04, 70),  # below the heart
}
_LUNGS = ((0.32, 0.45, 0.13, 0.28), (0.68, 0.45, 0.13, 0.28))

_SAMPLE_README = """\
SYNTHETIC DATA - NOT MEDICAL IMAGES
===================================

This folder was written by kinone.data.datasets.nih.make_sample (kinone-data {version})
with n_patients={n_patients}, image_size={image_size}, draw_size={draw_size}, seed={seed}.
It imitates the file layout of the NIH ChestX-ray14 dataset (Wang et al., CVPR 2017) so that
code reading the real dataset can be run and tested without the 42 GB download. No image here
comes from a patient.

Files, as in the real dataset:
  Data_Entry_2017_v2020.csv   the real 11-field header; one row per image
  train_val_list.txt          {n_train_val} images of {n_train_val_patients} patients (no trailing newline)
  test_list.txt               {n_test} images of {n_test_patients} patients (no trailing newline)
  images_001/images/          {n_images} PNGs named <patient id, 8 digits>_<follow-up, 3 digits>.png,
                              8-bit grayscale, {image_size} x {image_size}; {n_rgba} are RGBA and {n_rgb} RGB,
                              as some real files are

How the images are made: a drawn "chest" (body, two dark lungs, heart, spine, faint ribs),
with random position, brightness, contrast, smooth texture and pixel noise per image. Each of
the 14 findings adds its own pattern at its own place (for example Nodule: a small bright
disk at the left of the image, mid-height; Pneumothorax: a dark region at the top right;
Cardiomegaly: a larger heart; Emphysema: darker lungs), with random amplitude and a small
random offset. "No Finding" images have none of them. So a model can learn every finding,
from the pixels alone.

Labels: each patient has a set of findings drawn with the real per-image prevalence (floored
at 3%), and each follow-up image keeps each of them with probability 0.75 and gains others
with a small probability; so some rows have several findings and about 45% have none.
Every finding has at least {min_positives} positive images in each of the two split lists.
Patients: the test patients ({test_fraction:.0%}) are disjoint from the train/val patients.
"""


def make_sample(
    root,
    n_patients: int = 300,
    image_size: int = 128,
    seed: int = 0,
    *,
    test_fraction: float = 0.2,
    overwrite: bool = False,
    progress: bool | None = None,
    workers: int = 0,
    draw_size: int | None = None,
) -> Path:
    """Write a small synthetic dataset in the exact NIH ChestX-ray14 layout; returns `root`.

    The defaults (300 patients, about 900 images of 128 x 128) take a few seconds to write.
    Images have a learnable signal per finding (see the README.txt written with them). The
    metadata CSV is written last, so a folder holding it is complete. `progress`: a tqdm bar
    (None: only on a terminal).

    A larger sample at the real size, for throughput tests (kinone-prepare, loaders): e.g.
    `make_sample(root, n_patients=1000, image_size=1024, workers=8, draw_size=256)` writes
    about 3,000 PNGs of 1024 x 1024 (~0.7 MB each, as heavy to decode as NIH's). `workers`:
    processes drawing and writing images (0: this process); the images are the same for any
    number (each is drawn from its own generator, keyed by (seed, image number)). `draw_size`:
    draw the chest at this size and upsample it (bicubic) to `image_size`, adding pixel noise
    at full size: ~4x faster at 1024 than drawing at full size (118 ms an image), with the same
    findings in the same places. Images of 512 pixels and more are written with PNG
    compression level 1 (2x faster to write than Pillow's default 6; decoding costs the same).
    """
    from tqdm import tqdm

    from ..__about__ import __version__

    if n_patients < 2:
        raise ValueError(f"make_sample: n_patients must be at least 2; got {n_patients}")
    if image_size < 16:
        raise ValueError(f"make_sample: image_size must be at least 16; got {image_size}")
    if draw_size is not None and not 16 <= draw_size:
        raise ValueError(f"make_sample: draw_size must be at least 16; got {draw_size}")
    if workers < 0:
        raise ValueError(f"make_sample: workers must be 0 or more; got {workers}")
    root = Path(root)
    if (root / CSV_NAMES[0]).exists() and not overwrite:
        raise FileExistsError(f"make_sample: {root / CSV_NAMES[0]} exists; pass overwrite=True to write it again")
    folder = root / "images_001" / "images"
    folder.mkdir(parents=True, exist_ok=True)

    rng = np.random.default_rng(seed)
    prevalence = np.array(SAMPLE_PREVALENCE)
    test_patients = set((1 + rng.permutation(n_patients)[: max(1, round(test_fraction * n_patients))]).tolist())
    rows = []  # [name, findings (bool, 14), follow-up, patient id, age, sex, view]
    for patient in range(1, n_patients + 1):
        follow_ups = min(1 + int(rng.poisson(2.0)), 8)
        age, sex = int(rng.integers(18, 86)), "M" if rng.random() < 0.565 else "F"
        base = rng.random(len(FINDINGS)) < prevalence
        for k in range(follow_ups):
            present = (base & (rng.random(len(FINDINGS)) < 0.75)) | (rng.random(len(FINDINGS)) < 0.3 * prevalence)
            view = "PA" if rng.random() < 0.6 else "AP"
            rows.append([f"{patient:08d}_{k:03d}.png", present, k, patient, age + k // 2, sex, view])
    # Rare findings cluster by patient: make sure each has a few positives on both sides of
    # the official split, so that its test AUROC is defined.
    for side in (True, False):
        members = [r for r in rows if (r[3] in test_patients) == side]
        for f in range(len(FINDINGS)):
            lacking = [r for r in members if not r[1][f]]
            missing = MIN_POSITIVES - (len(members) - len(lacking))
            for i in rng.permutation(len(lacking))[: max(0, missing)]:
                lacking[i][1][f] = True

    n = len(rows)
    modes = np.array(["L"] * n, dtype=object)
    special = rng.permutation(n)[: 2 * max(2, round(0.02 * n))]  # ~2% RGBA and ~2% RGB
    modes[special[: len(special) // 2]], modes[special[len(special) // 2 :]] = "RGBA", "RGB"
    jobs = [
        (str(folder / name), np.flatnonzero(present), mode, image_size, draw_size, (seed, number))
        for number, ((name, present, *_), mode) in enumerate(zip(rows, modes))
    ]
    bar = tqdm(total=n, desc="writing sample images", unit="img", disable=None if progress is None else not progress)
    with bar:
        if workers == 0:
            for job in jobs:
                _write_sample_image(*job)
                bar.update()
        else:
            import multiprocessing

            with multiprocessing.get_context("spawn" if os.name != "posix" else "fork").Pool(workers) as pool:
                for _ in pool.imap_unordered(_write_sample_image_job, jobs, chunksize=4):
                    bar.update()

    test = [r[0] for r in rows if r[3] in test_patients]
    train_val = [r[0] for r in rows if r[3] not in test_patients]
    (root / TRAIN_VAL_LIST).write_text("\n".join(train_val), encoding="utf-8")  # no trailing newline, as NIH's
    (root / TEST_LIST).write_text("\n".join(test), encoding="utf-8")
    (root / "README.txt").write_text(
        _SAMPLE_README.format(
            version=__version__,
            n_patients=n_patients,
            image_size=image_size,
            draw_size=draw_size,
            seed=seed,
            n_images=n,
            n_train_val=len(train_val),
            n_train_val_patients=n_patients - len(test_patients),
            n_test=len(test),
            n_test_patients=len(test_patients),
            n_rgba=int((modes == "RGBA").sum()),
            n_rgb=int((modes == "RGB").sum()),
            test_fraction=test_fraction,
            min_positives=MIN_POSITIVES,
        ),
        encoding="utf-8",
    )
    lines = [V2020_HEADER]
    for name, present, follow_up, patient, age, sex, view in rows:
        labels = "|".join(sorted(FINDINGS[i] for i in np.flatnonzero(present))) or NO_FINDING
        spacing = 0.143 if view == "PA" else 0.168
        lines.append(
            f"{name},{labels},{follow_up},{patient},{age},{sex},{view},{image_size},{image_size},{spacing},{spacing}"
        )
    temporary = root / (CSV_NAMES[0] + ".tmp")
    temporary.write_text("\n".join(lines) + "\n", encoding="utf-8")
    os.replace(temporary, root / CSV_NAMES[0])  # last: a folder with the CSV is complete
    return root


def _write_sample_image(path: str, findings, mode: str, image_size: int, draw_size, key) -> None:
    """Draw one synthetic radiograph with `findings` (from a generator keyed by `key`) and save it."""
    rng = np.random.default_rng(key)
    size = image_size if draw_size is None else min(draw_size, image_size)
    pixels = _draw_chest(findings, (np.arange(size, dtype=np.float32) + 0.5) / size, rng)
    if size != image_size:
        upsampled = Image.fromarray(pixels).resize((image_size, image_size), Image.Resampling.BICUBIC)
        noisy = np.asarray(upsampled, dtype=np.float32) + rng.standard_normal((image_size, image_size), np.float32) * 4
        pixels = np.clip(np.rint(noisy), 0, 255).astype(np.uint8)
    if mode == "L":
        image = Image.fromarray(pixels)
    else:
        channels = [pixels] * 3 + ([np.full_like(pixels, 255)] if mode == "RGBA" else [])
        image = Image.fromarray(np.stack(channels, axis=-1))
    image.save(path, compress_level=1 if image_size >= 512 else 6)


def _write_sample_image_job(job) -> None:
    _write_sample_image(*job)


def _window(size: int, cx, cy, rx, ry) -> tuple[slice, slice]:
    """The pixel rows and columns where a shape of radii (rx, ry) about (cx, cy) can be non-zero."""

    def span(c, r):
        return slice(max(0, int((c - 1.6 * r) * size)), min(size, int(math.ceil((c + 1.6 * r) * size)) + 1))

    return span(cy, ry), span(cx, rx)


def _ellipse(xx, yy, cx, cy, rx, ry, softness=0.3):
    """1 inside the ellipse, 0 outside, with a soft edge `softness` of the radius wide."""
    r = np.sqrt(((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2)
    return np.clip((1.0 - r) / softness, 0.0, 1.0)


def _smooth_noise(rng, cells: int, shape: tuple[int, int]) -> np.ndarray:
    """A smooth random field in [-1, 1]: `cells` x `cells` values upsampled bilinearly."""
    small = rng.uniform(-1, 1, (cells, cells)).astype(np.float32)
    return np.asarray(Image.fromarray(small, mode="F").resize(shape[::-1], Image.Resampling.BILINEAR))


def _draw_chest(findings, grid, rng) -> np.ndarray:
    """One synthetic radiograph (uint8, square) with the signals of `findings` (indices into FINDINGS).

    Shapes are computed only in the window they can cover (drawing is ~4x faster than on
    the whole image)."""
    size = len(grid)
    dx, dy = rng.uniform(-0.03, 0.03, 2)  # where the patient stands
    xs, ys = grid - np.float32(dx), grid - np.float32(dy)
    names = {FINDINGS[i] for i in findings}

    def blend(cx, cy, rx, ry, softness, level):  # paint an ellipse of gray `level` (array or number)
        rows, cols = _window(size, cx + dx, cy + dy, rx, ry)
        mask = _ellipse(xs[None, cols], ys[rows, None], cx, cy, rx, ry, softness)
        part = image[rows, cols]
        part += mask * ((level[rows, cols] if isinstance(level, np.ndarray) else level) - part)

    image = np.full((size, size), 30.0, dtype=np.float32)
    blend(0.5, 0.55, 0.44, 0.50, 0.1, 140.0)  # body
    ribs = (8 * np.sin(2 * np.pi * ys / 0.06, dtype=np.float32))[:, None] + np.zeros((1, size), np.float32)
    lung_level = 75.0 - (30.0 if "Emphysema" in names else 0.0) * rng.uniform(0.8, 1.2)
    for lung in _LUNGS:
        blend(*lung, 0.15, ribs + np.float32(lung_level))
    heart_scale = 1.5 if "Cardiomegaly" in names else 1.0
    blend(0.56, 0.62, 0.11 * heart_scale, 0.085 * heart_scale, 0.2, 165.0)
    rows, cols = _window(size, 0.5 + dx, 0.55 + dy, 0.03, 0.5)
    image[rows, cols] += _ellipse(xs[None, cols], ys[rows, None], 0.5, 0.55, 0.03, 0.5, 0.5) * 25  # spine
    image += _smooth_noise(rng, 6, image.shape) * 12

    for name in sorted(names):
        pattern, cx, cy, rx, ry, amplitude = _SIGNALS[name]
        if pattern in ("heart", "lungs"):
            continue  # drawn above
        cx, cy = cx + rng.uniform(-0.02, 0.02), cy + rng.uniform(-0.02, 0.02)
        amplitude *= rng.uniform(0.7, 1.1)
        centres = [(cx, cy), (1 - cx, cy)] if pattern == "pair" else [(cx, cy)]
        for x0, y0 in centres:
            rows, cols = _window(size, x0 + dx, y0 + dy, rx, ry)
            x, y = xs[None, cols], ys[rows, None]
            if pattern == "ellipse":
                signal = _ellipse(x, y, x0, y0, rx, ry)
            elif pattern in ("cloud", "pair"):
                signal = np.exp(-(((x - x0) / rx) ** 2 + ((y - y0) / ry) ** 2))
            elif pattern == "box":
                signal = ((np.abs(x - x0) < rx) & (np.abs(y - y0) < ry)).astype(np.float32)
            elif pattern == "patches":
                patches = _smooth_noise(rng, 4, (rows.stop - rows.start, cols.stop - cols.start)) > 0.1
                signal = _ellipse(x, y, x0, y0, rx, ry) * patches
            elif pattern == "grid":
                period = 0.035
                lattice = np.maximum(np.cos(2 * np.pi * x / period), np.cos(2 * np.pi * y / period)) > 0.6
                signal = _ellipse(x, y, x0, y0, rx, ry) * lattice
            else:
                raise AssertionError(pattern)
            image[rows, cols] += amplitude * signal

    image = (image - 100) * np.float32(rng.uniform(0.9, 1.1)) + np.float32(100 + rng.uniform(-10, 10))  # exposure
    image += rng.standard_normal(image.shape, dtype=np.float32) * 5
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)
