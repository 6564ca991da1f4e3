import { useEffect, useState } from "react";

type Highlighter = typeof import("./highlight");

let loaded: Highlighter | null = null;
let loading: Promise<Highlighter> | null = null;

/** highlight.js and its grammars, fetched the first time a diff is shown (a chunk of its own,
 *  about 25 kB gzipped, that no other page needs); null until then, and if it cannot load the
 *  lines stay plain. */
export function useHighlighter(): Highlighter | null {
  const [hl, setHl] = useState(loaded);
  useEffect(() => {
    if (hl) return;
    let live = true;
    loading ??= import("./highlight").then((m) => (loaded = m));
    loading.then(
      (m) => live && setHl(m),
      () => (loading = null), // try again on the next diff shown
    );
    return () => {
      live = false;
    };
  }, [hl]);
  return hl;
}
