"""The comparison page's tables (html_page draws the rest): the measured model table, C1-C5 side by
side, the cross-model CKA tables, and the seed card's claims in a block of their own. Every measured
number is printed as a <span data-key data-run data-value> holding its full value, so a checker can
read the page back exactly."""
from compare_data import (CLASS_RULE, SEED_LINE, SEED_LINE_K, cka_at, floor_class, line_class,
                          matched_depth_rows)
from compare_figures import CONSTANTS
from html_page import esc, number, table


def value(key, where, v, digits=4):
    """A number as shown (digits significant) with its exact value for machines."""
    if v is None:
        return "&ndash;"
    return f'<span data-key="{esc(key)}" data-run="{esc(where)}" data-value="{float(v)!r}">{number(float(v), digits)}</span>'


def model_table(rows, k, tolerance):
    out = []
    for i, row in enumerate(rows):
        p = row.precision
        line = line_class(row.median, k)
        floor = floor_class(row.ratio, tolerance)
        shapes = "; ".join(f"{number(f)} ({esc(shape)})" for shape, f in row.floors_by_shape.items())
        out.append([
            str(i + 1), esc(row.label),
            f"{esc(p.training)} <span class='muted'>({esc(p.training_source)})</span>",
            f"{esc(p.storage)} <span class='muted'>({esc(p.storage_source)})</span>",
            f"{len(row.layers)} {esc(row.counted)} of {row.run.num_hidden_layers}",
            value("median", i, row.median),
            f"[{value('q25', i, row.q25)}, {value('q75', i, row.q75)}]",
            f"{value('floor', i, row.floor)}<br><span class='muted'>{shapes}</span>",
            value("ratio", i, row.ratio, 3) + " / " + value("excess", i, row.excess, 3),
            f'<span data-key="line_class" data-run="{i}">{esc(line) if line else "n/a (k = " + str(k) + ")"}</span>',
            f'<span data-key="floor_class" data-run="{i}">{esc(floor) if floor else "&ndash;"}</span>'])
    return table(["#", "model", "training precision", "storage precision", "layers counted", f"median var@{k}",
                  "IQR [q25, q75] of the layer medians", f"random floor var@{k} (shapes)", "median / floor, excess",
                  f"class vs {SEED_LINE} (var@{SEED_LINE_K})", "class vs floor"], out, numeric=(5, 6, 7, 8))


def rules(k, tolerance):
    return (f"<p class='muted'>Each row summarises the model's counted layers: its MoE layers when it has any "
            f"(the routed experts' down_proj, as C4 and the seed card count), else its dense MLP layers. The median "
            f"is the median over those layers of each layer's median var@{k}; the IQR is the 25th-75th percentile "
            f"of the same layer medians (its spread over depth); the random floor is the median over those layers "
            f"of their shape's floor (README, \"The random floor\"). {esc(CLASS_RULE)} Tolerance t = {tolerance}. "
            f"Training precision is what --precision gives (the outputs cannot tell it); storage precision is "
            f"read from moe_config.json unless --storage gives it; the source of each is printed beside it.</p>")


def constants_side_by_side(rows):
    body = []
    for key in CONSTANTS:
        cells, name, about = [], "", ""
        for i, row in enumerate(rows):
            c = row.run.aggregate.get("constants", {}).get(key, {})
            name = c.get("name", name)
            about = about or c.get("definition", "")
            if c.get("status") == "measured" and c.get("value") is not None:
                cells.append(value(key, i, c["value"]))
            else:
                cells.append(f"<span class='{esc(c.get('status', 'pending'))}'>{esc(c.get('status', 'absent'))}</span>")
        body.append([esc(key), esc(name)] + cells + [f"<span class='muted'>{esc(about)}</span>"])
    return table(["constant", "name"] + [f"{i + 1}: {row.label}" for i, row in enumerate(rows)] + ["definition"],
                 body, numeric=tuple(range(2, 2 + len(rows))))


def cka_matched_table(cka, n):
    combos = cka.combos()
    a, b = cka.models
    out = []
    for target, entry in matched_depth_rows(cka):
        i, j = entry["layer_a"], entry["layer_b"]
        cells = [number(target, 3), number(entry["depth"], 3), str(i), number(b["depth"][j], 3), str(j)]
        cells += [value(f"cka_{p}_{e}", f"cka{n}:{i}:{j}", cka_at(cka, p, e, i, j)) for p, e in combos]
        out.append(cells)
    return table(["target depth", f"depth in {a['model']}", "layer", f"depth in {b['model']}", "layer"] +
                 [f"CKA {p}, {e}" for p, e in combos], out, numeric=tuple(range(0, 5 + len(combos))))


def cka_best_table(cka, n, which):
    """Each layer's best match (key best_match_a or best_match_b), every pooling and estimator."""
    combos = cka.combos()
    who = cka.models[0 if which == "best_match_a" else 1]
    entries = {c: cka.block(*c)[which] for c in combos}
    out = []
    for r in range(who["layers"]):
        first = entries[combos[0]][r]
        cells = [str(first["layer"]), number(first["depth"], 3)]
        for c in combos:
            e = entries[c][r]
            cells.append(f"{e['match']} ({number(e['match_depth'], 3)}): "
                         + value(f"best_{which[-1]}_{c[0]}_{c[1]}", f"cka{n}:{e['layer']}", e["cka"]))
        out.append(cells)
    return ("<details><summary>" + esc(f"Best match of each layer of {who['model']} "
                                       f"({len(out)} layers)") + "</summary>" +
            table(["layer", "depth"] + [f"{p}, {e}: match (depth): CKA" for p, e in combos], out) + "</details>")


def cka_intro(cka):
    d = cka.data
    a, b = cka.models
    return (f"<p class='muted'>From <code>{esc(cka.path)}</code>: {esc(a['model'])} ({a['layers']} representations) "
            f"against {esc(b['model'])} ({b['layers']}), {esc(d.get('prompts', '?'))} prompts (prompt set SHA-256 "
            f"<code>{esc(str(d.get('prompt_set_sha256', '?'))[:16])}</code>), default estimator "
            f"{esc(d['default_estimator'])}. Depth is normalised: layer / (layers - 1). Matched depth pairs layer i "
            f"of the first model with round(depth * (layers - 1)) of the second; the rows below are the entries "
            f"nearest depths 0, 0.25, 0.5, 0.75 and 1.</p>")


def seed_claims_block(claims):
    rows = [[esc(c) for c in row] for row in claims["rows"]]
    return ("<div class='claims' id='seed-claims'><h3>The seed card's claims (not measured here)</h3>"
            f"<p>Copied as written from <code>{esc(claims['path'])}</code> (SHA-256 "
            f"<code>{esc(claims['sha256'][:16])}</code>). These are the card's statements about models this page "
            "did not analyse; nothing in them was computed by vindex_mpi, and none of them enters the measured "
            "table, figures or classes above.</p>" + table(claims["header"], rows) +
            (f"<p class='muted'>The card's note: {esc(claims['note'])}</p>" if claims["note"] else "") + "</div>")
