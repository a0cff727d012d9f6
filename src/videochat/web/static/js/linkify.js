// Links in chat text: http(s) URLs become anchors, everything else stays text. Built
// from text nodes and anchors (textContent and href only), never from markup.

const URL_PATTERN = /\bhttps?:\/\/[^\s<>"'`]+/giu;
// Sentence punctuation after a link belongs to the sentence, not the address.
const TRAILING = /[.,;:!?'"]+$/u;

/** The address without trailing punctuation; a ")" stays only if it closes a "(". */
function trimmed(candidate) {
  let text = candidate.replace(TRAILING, '');
  while (text.endsWith(')') && text.split(')').length > text.split('(').length) {
    text = text.slice(0, -1).replace(TRAILING, '');
  }
  return text;
}

/** The URL to open, or null unless it is a well-formed http(s) address. */
function safeHref(text) {
  try {
    const url = new URL(text);
    return url.protocol === 'http:' || url.protocol === 'https:' ? url.href : null;
  } catch {
    return null;
  }
}

/** A fragment of the text with each http(s) URL as a link that opens in a new tab. */
export function linkified(text) {
  const fragment = document.createDocumentFragment();
  let done = 0;
  for (const match of text.matchAll(URL_PATTERN)) {
    const address = trimmed(match[0]);
    const href = safeHref(address);
    if (!href) continue;
    fragment.append(text.slice(done, match.index));
    const anchor = document.createElement('a');
    anchor.href = href;
    anchor.textContent = address;
    anchor.rel = 'noopener noreferrer';
    anchor.target = '_blank';
    fragment.append(anchor);
    done = match.index + address.length;
  }
  fragment.append(text.slice(done));
  return fragment;
}
