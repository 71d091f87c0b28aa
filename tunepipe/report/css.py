"""The report's stylesheet, inlined into report.html.

Kept as a Python string rather than a .css file so it ships inside the wheel without package-data
configuration and the page stays self-contained.
"""

CSS = """
:root { --ink:#111827; --muted:#6B7280; --line:#E5E7EB; --accent:#1F4E79; --bg:#F9FAFB; }
* { box-sizing: border-box; }
body { margin:0; background:var(--bg); color:var(--ink);
  font: 15px/1.5 -apple-system, "Segoe UI", "Helvetica Neue", Roboto, "DejaVu Sans", sans-serif; }
header { background:var(--accent); color:white; padding:18px 32px 12px; }
header .brand { font-size:12px; letter-spacing:.12em; text-transform:uppercase; opacity:.75; }
header h1 { margin:2px 0 0; font-size:26px; font-weight:600; }
header .sub { font-size:13px; opacity:.8; }
nav { margin-top:10px; display:flex; flex-wrap:wrap; gap:4px 14px; font-size:13px; }
nav a { color:white; opacity:.85; text-decoration:none; }
nav a:hover { opacity:1; text-decoration:underline; }
main { max-width:1240px; margin:0 auto; padding:8px 32px 32px; }
section { background:white; border:1px solid var(--line); border-radius:8px;
  padding:16px 22px 18px; margin:18px 0; }
h2 { font-size:19px; margin:0 0 6px; color:var(--accent); }
h3 { font-size:15px; margin:18px 0 6px; }
p.lead { color:var(--muted); margin:0 0 12px; font-size:14px; }
p.note { color:var(--muted); font-style:italic; }
p.note.warn { color:#B45309; font-style:normal; font-weight:500; }
figure { margin:8px 0; }
figure img { max-width:100%; height:auto; display:block; }
figcaption { font-size:11px; color:var(--muted); }
.cards { display:grid; grid-template-columns:repeat(auto-fill, minmax(170px, 1fr)); gap:10px; }
.card { border:1px solid var(--line); border-radius:6px; padding:8px 12px; }
.card .k { font-size:11px; color:var(--muted); text-transform:uppercase; letter-spacing:.06em; }
.card .v { font-size:17px; font-weight:600; overflow-wrap:anywhere; }
table { border-collapse:collapse; font-size:13px; margin:6px 0; }
table.narrow { min-width:320px; }
th, td { border-bottom:1px solid var(--line); padding:4px 10px; text-align:left;
  vertical-align:top; }
th { background:#F3F4F6; font-weight:600; white-space:nowrap; }
td { font-variant-numeric: tabular-nums; }
tr.best td { background:#EFF6FF; font-weight:600; }
.scroll { overflow-x:auto; }
table.trials td { white-space:nowrap; max-width:280px; overflow:hidden; text-overflow:ellipsis; }
code { font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size:12.5px; }
.badge { display:inline-block; color:white; border-radius:10px; padding:0 9px; font-size:12px;
  font-weight:600; }
footer { text-align:center; color:var(--muted); font-size:12px; padding:12px 0 28px; }
"""
