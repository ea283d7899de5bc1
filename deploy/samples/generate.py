"""Writes the sample files beside it (run once; the outputs are committed): a Merchant Center feed of 60 products
in 6 departments as XML (`products.xml`) and the same as TSV (`products.tsv`), and a GA4 BigQuery export
(`ga4_events.ndjson`) of 1,500 view / add-to-cart / purchase events of 150 shoppers over 90 days, each shopper
browsing one department. Synthetic: no real shop's data. `python deploy/samples/generate.py`."""

import json
import random
from pathlib import Path
from xml.sax.saxutils import escape

HERE = Path(__file__).resolve().parent
DEPARTMENTS = ["Mugs", "Lamps", "Towels", "Candles", "Vases", "Cushions"]
COLOURS = ["Red", "Blue", "Green", "Ivory", "Black", "Amber", "Teal", "Rose", "Slate", "Olive"]
N_PRODUCTS, N_EVENTS, N_SHOPPERS, DAYS = 60, 1500, 150, 90
START_US = 1_714_521_600 * 1_000_000  # 2024-05-01 UTC


def product(i: int) -> dict:
    dep = DEPARTMENTS[i % len(DEPARTMENTS)]
    title = f"{COLOURS[(i // len(DEPARTMENTS)) % len(COLOURS)]} {dep[:-1]} No. {i}"
    return {"id": f"SKU-{i}", "title": title, "description": f"{title} from our {dep.lower()} range.",
            "link": f"https://shop.example/p/SKU-{i}", "image_link": f"https://shop.example/img/{i}.jpg",
            "price": f"{5 + i % 40}.50 GBP", "availability": "out_of_stock" if i % 20 == 19 else "in_stock",
            "product_type": f"Home > {dep}", "brand": "Shelf & Co"}


def main() -> None:
    products = [product(i) for i in range(N_PRODUCTS)]
    items = "".join(
        f"<item><g:id>{p['id']}</g:id><title>{escape(p['title'])}</title><description>{escape(p['description'])}"
        f"</description><link>{p['link']}</link><g:image_link>{p['image_link']}</g:image_link>"
        f"<g:price>{p['price']}</g:price><g:availability>{p['availability']}</g:availability>"
        f"<g:product_type>{escape(p['product_type'])}</g:product_type><g:brand>{escape(p['brand'])}</g:brand>"
        "</item>\n" for p in products)
    (HERE / "products.xml").write_text('<?xml version="1.0" encoding="UTF-8"?>\n<rss version="2.0" xmlns:g='
                                       '"http://base.google.com/ns/1.0"><channel><title>Sample shop</title>\n'
                                       f"{items}</channel></rss>\n")
    columns = list(products[0])
    (HERE / "products.tsv").write_text("\t".join(columns) + "\n" +
                                       "".join("\t".join(p[c] for c in columns) + "\n" for p in products))
    rng = random.Random(28)
    per_dep = N_PRODUCTS // len(DEPARTMENTS)
    lines = []
    for n in range(N_EVENTS):
        s = rng.randrange(N_SHOPPERS)
        item = int(rng.paretovariate(1.2) - 1) % per_dep * len(DEPARTMENTS) + s % len(DEPARTMENTS)
        name = rng.choices(["view_item", "add_to_cart", "purchase"], [0.7, 0.2, 0.1])[0]
        at = START_US + n * DAYS * 86_400 * 1_000_000 // N_EVENTS
        entry = {"item_id": f"SKU-{item}", "item_name": products[item]["title"], "price": 5.5 + item % 40,
                 "quantity": 1}
        lines.append(json.dumps({"event_timestamp": str(at), "event_name": name,
                                 "user_pseudo_id": f"{1000 + s}.{s * 7}", "items": [entry]}))
    (HERE / "ga4_events.ndjson").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
