/** Text shown whole when short; a long or multi-line one folds behind its first line. */
export function LongText({ text, max = 120 }: { text: string; max?: number }) {
  const first = text.split("\n", 1)[0];
  if (text.length <= max && first === text) return <span>{text}</span>;
  const head = first.length > max ? `${first.slice(0, max)}…` : `${first} …`;
  return (
    <details className="long-text">
      <summary>{head}</summary>
      <pre className="mono">{text}</pre>
    </details>
  );
}
