import DOMPurify from "dompurify";
import { marked } from "marked";

/** Markdown from the agent, rendered and sanitised (the agent is not trusted with HTML). */
export function renderMarkdown(md: string): string {
  return DOMPurify.sanitize(marked.parse(md, { async: false }) as string);
}
