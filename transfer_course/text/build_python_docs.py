"""How ``python_docs.json`` was made (run once with CPython 3.11; the JSON, not this script, is the dataset).

For six areas of the standard library, take every public function, class and method of the listed modules whose
object really lives there, keep the first sentence of its docstring (5 to 40 words), drop exact duplicates, then drop
near-duplicates (cosine >= 0.8 of character 3-5-gram TF-IDF vectors, keeping the first), keep 83 per class (the
smallest class has 83) with a fixed seed, and deal them out 30 test / 20 val / 33 train per class. Because
near-duplicates were removed before splitting, no text has a near copy in another split.

    python -m transfer_course.text.build_python_docs OUT.json
"""
import collections
import importlib
import inspect
import json
import re
import sys
import warnings

warnings.filterwarnings("ignore")
GROUPS = {
 "math": ["math","cmath","statistics","decimal","fractions","random","numbers","operator"],
 "files": ["os","os.path","shutil","pathlib","glob","fnmatch","tempfile","filecmp","stat","zipfile","tarfile","io"],
 "network": ["socket","ssl","http.client","http.server","http.cookies","http.cookiejar","urllib.request","urllib.parse","smtplib","ftplib","poplib","imaplib","ipaddress","email.message","email.utils","xmlrpc.client","socketserver"],
 "time": ["datetime","time","calendar","zoneinfo","sched"],
 "text": ["string","re","textwrap","difflib","unicodedata","codecs","html","html.parser","locale","gettext"],
 "concurrency": ["threading","multiprocessing","multiprocessing.pool","asyncio","queue","concurrent.futures","subprocess","signal","selectors"],
}
EXTRA={'math':{'pydecimal','statistics'},'files':{'posix','posixpath','genericpath','io','pyio'},'network':{'socket','ssl'},'time':{'datetime','pydatetime'},'text':{'sre','re','string'},'concurrency':{'thread','asyncio','queue','multiprocessing','posixsubprocess'}}
PER=83
seen=set(); rows=[]
ALLOWED={k:{m.split('.')[0] for m in v}|EXTRA.get(k,set()) for k,v in GROUPS.items()}
def first_sentence(doc):
    doc = inspect.cleandoc(doc)
    para = doc.split("\n\n")[0]
    # skip signature lines
    lines=[l for l in para.splitlines() if not re.match(r"^\w[\w.]*\(.*\)( -> .*)?$", l.strip())]
    para=" ".join(l.strip() for l in lines).strip()
    m = re.match(r"(.+?[.!?])(\s|$)", para)
    s = m.group(1) if m else para
    return re.sub(r"\s+"," ",s).strip()


def main():
    global rows
    for label, mods in GROUPS.items():
        for modname in mods:
            mod = importlib.import_module(modname)
            for name, obj in inspect.getmembers(mod):
                if name.startswith("_"): continue
                if inspect.isclass(obj):
                    members=[(name,obj)]+[(f"{name}.{n}",o) for n,o in vars(obj).items() if not n.startswith("_") and callable(o)]
                elif callable(obj): members=[(name,obj)]
                else: continue
                for qn,o in members:
                    om = str(getattr(obj,"__module__","") or "")
                    if om.lstrip("_").split(".")[0] not in ALLOWED[label]:
                        continue
                    d=inspect.getdoc(o)
                    if not d: continue
                    s=first_sentence(d)
                    n=len(s.split())
                    if n<5 or n>40: continue
                    key=re.sub(r"\W+"," ",s.lower()).strip()
                    if key in seen: continue
                    seen.add(key)
                    rows.append({"text":s,"label":label,"source":f"{modname}.{qn}"})
    c=collections.Counter(r["label"] for r in rows); print(c, len(rows))

    # ---- dedup near-duplicates, balance, split
    import numpy as np
    from sklearn.feature_extraction.text import TfidfVectorizer

    texts=[r["text"] for r in rows]
    X=TfidfVectorizer(analyzer="char_wb", ngram_range=(3,5)).fit_transform(texts)
    S=(X@X.T).toarray(); np.fill_diagonal(S,0)
    dropped=0
    kept_mask=np.zeros(len(rows),bool)
    for i in range(len(rows)):
        if (S[i, kept_mask] >= 0.8).any(): dropped+=1; continue
        kept_mask[i]=True
    rows=[r for r,k in zip(rows,kept_mask) if k]
    print("dropped near-dups", dropped, collections.Counter(r["label"] for r in rows))
    rng=np.random.default_rng(7)
    out=[]
    for label in GROUPS:
        idx=[i for i,r in enumerate(rows) if r["label"]==label]
        idx=[idx[j] for j in rng.permutation(len(idx))[:PER]]
        for j,i in enumerate(idx):
            r=dict(rows[i]); r["split"]="test" if j<30 else "val" if j<50 else "train"; out.append(r)
    print(collections.Counter((r["label"],r["split"]) for r in out))
    with open(sys.argv[1] if len(sys.argv) > 1 else "python_docs.json", "w") as f:
        json.dump(out, f, indent=0, ensure_ascii=False)


if __name__ == "__main__":
    main()
