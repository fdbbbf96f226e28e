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

`make_sample(root)` (nih_sample.py) writes a small synthetic dataset in exactly this layout.
"""

from __future__ import annotations

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
        n_val = round(val_fraction * len(unique))
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
        """ "line 57 (image '00000013_005.png')" for the pandas row `row`."""
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
    """ "'a', 'b', 'c', ... (N more)": the first SHOWN_NAMES names and how many are left out."""
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
# The synthetic sample's writer and painter live in nih_sample.py; their public names stay
# importable from here (looked up on first use: nih_sample imports this module's constants).
_SAMPLE_NAMES = ("MIN_POSITIVES", "SAMPLE_PREVALENCE", "make_sample")


def __getattr__(name: str):
    if name in _SAMPLE_NAMES:
        from . import nih_sample

        return getattr(nih_sample, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
