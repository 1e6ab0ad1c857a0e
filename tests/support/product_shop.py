"""A tiny Office-like product domain for tests (``import product_shop``): opaque brand and category
ids, titles that run title + leaf category + brand together, complement and substitute links, and
users who buy printers with ink. Named ``amazon14_office`` so kgforge treats it as a product domain."""

from __future__ import annotations

from kg_builder.datasets import Dataset, InteractionRecord, ItemLinkRecord, ItemRecord

DOMAIN = "amazon14_office"
INK, PRINTERS, PAPER = (f"{DOMAIN}:category:{c}" for c in ("6", "11", "2"))


def tiny_office() -> Dataset:
    items = [
        ItemRecord("1", title="HP 74 Black Ink Cartridge Inkjet Printer Ink HP", asin="B001", brand_id="2",
                   category_ids=("6",)),
        ItemRecord("2", title="HP Photosmart 8250 Printer Inkjet Printers HP", asin="B002", brand_id="2",
                   category_ids=("11",)),
        ItemRecord("3", title="HP 75 Tri-color Ink Cartridge Inkjet Printer Ink HP", asin="B003", brand_id="2",
                   category_ids=("6",)),
        ItemRecord("4", title="Epson Photo Paper Glossy Photo Paper Epson", asin="B004", brand_id="7",
                   category_ids=("2",)),
        ItemRecord("5", title="Epson Stylus Photo Printer Photo Printers Epson", asin="B005", brand_id="7",
                   category_ids=("11",)),
        ItemRecord("6", title="Epson Matte Paper Pack Photo Paper Epson", asin="B006", brand_id="7",
                   category_ids=("2",)),
    ]
    buys = [("u1", "2"), ("u1", "1"), ("u2", "5"), ("u2", "3"), ("u3", "2"), ("u3", "3"), ("u4", "5"), ("u4", "4"),
            ("u5", "1"), ("u5", "3"), ("u6", "4"), ("u6", "6")]
    return Dataset(
        name=DOMAIN, kind="rec", items=items,
        interactions=[InteractionRecord(u, i, "train", timestamp=n) for n, (u, i) in enumerate(buys)],
        item_links=[ItemLinkRecord("2", "complement", "1"), ItemLinkRecord("2", "complement", "3"),
                    ItemLinkRecord("5", "complement", "4"), ItemLinkRecord("5", "complement", "3"),
                    ItemLinkRecord("1", "substitute", "3"), ItemLinkRecord("4", "complement", "6")])
