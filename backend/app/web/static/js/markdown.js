// A small, safe Markdown subset rendered straight to DOM nodes. Message text only ever becomes
// text nodes (textContent), never HTML: `<img onerror=...>` shows as the characters typed.
// Blocks: fenced code, headings, lists, quotes, paragraphs. Inline: code, bold, italic, links
// (http, https and mailto only; anything else, `javascript:` included, stays text).

const SAFE_URL = /^(https?:\/\/|mailto:)/i;

function el(tag, className) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  return node;
}

const INLINE = [
  { re: /^`([^`\n]+)`/, make: (m) => textIn(el("code"), m[1]) },
  {
    re: /^\[([^\]\n]+)\]\(([^()\s]+)\)/,
    make: (m) => {
      if (!SAFE_URL.test(m[2])) return document.createTextNode(m[0]);
      const link = el("a");
      link.href = m[2];
      link.rel = "noopener noreferrer nofollow";
      link.target = "_blank";
      inline(link, m[1]);
      return link;
    },
  },
  { re: /^\*\*(\S(?:[^*]*?\S)?)\*\*/, make: (m) => inline(el("strong"), m[1]) },
  { re: /^__(\S(?:[^_]*?\S)?)__/, make: (m) => inline(el("strong"), m[1]) },
  { re: /^\*(\S(?:[^*]*?\S)?)\*/, make: (m) => inline(el("em"), m[1]) },
  { re: /^_(\S(?:[^_]*?\S)?)_(?![A-Za-z0-9])/, make: (m) => inline(el("em"), m[1]) },
  { re: /^~~(\S(?:[^~]*?\S)?)~~/, make: (m) => inline(el("del"), m[1]) },
];

function textIn(node, text) {
  node.textContent = text;
  return node;
}

// Appends `text`, with inline formatting, to `parent`; single newlines become <br>.
function inline(parent, text) {
  let plain = "";
  const flush = () => {
    const lines = plain.split("\n");
    lines.forEach((line, index) => {
      if (index) parent.append(el("br"));
      if (line) parent.append(document.createTextNode(line));
    });
    plain = "";
  };
  let rest = text;
  while (rest) {
    let matched = false;
    if ("`[*_~".includes(rest[0])) {
      for (const rule of INLINE) {
        const m = rest.match(rule.re);
        if (m) {
          flush();
          parent.append(rule.make(m));
          rest = rest.slice(m[0].length);
          matched = true;
          break;
        }
      }
    }
    if (!matched) {
      const next = rest.slice(1).search(/[`[*_~]/);
      const end = next < 0 ? rest.length : next + 1;
      plain += rest.slice(0, end);
      rest = rest.slice(end);
    }
  }
  flush();
  return parent;
}

const FENCE = /^ {0,3}(```|~~~)\s*([\w+-]*)\s*$/;
const HEADING = /^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$/;
const BULLET = /^ {0,3}[-*+]\s+(.*)$/;
const NUMBERED = /^ {0,3}\d{1,9}[.)]\s+(.*)$/;
const QUOTE = /^ {0,3}>\s?(.*)$/;
const RULE = /^ {0,3}([-*_])(\s*\1){2,}\s*$/;

// Renders `source` into a DocumentFragment.
export function renderMarkdown(source) {
  const root = document.createDocumentFragment();
  const lines = source.replace(/\r\n?/g, "\n").split("\n");
  let i = 0;
  const startsBlock = (line) =>
    FENCE.test(line) || HEADING.test(line) || BULLET.test(line) || NUMBERED.test(line) ||
    QUOTE.test(line) || RULE.test(line);
  while (i < lines.length) {
    const line = lines[i];
    let m;
    if (!line.trim()) {
      i++;
    } else if ((m = line.match(FENCE))) {
      const body = [];
      i++;
      while (i < lines.length && !lines[i].trim().startsWith(m[1])) body.push(lines[i++]);
      i++; // the closing fence (or the end of a reply still streaming)
      const pre = el("pre");
      const code = textIn(el("code"), body.join("\n"));
      if (m[2]) code.dataset.lang = m[2];
      pre.append(code);
      root.append(pre);
    } else if ((m = line.match(HEADING))) {
      root.append(inline(el(`h${Math.min(m[1].length + 2, 6)}`), m[2]));
      i++;
    } else if (RULE.test(line)) {
      root.append(el("hr"));
      i++;
    } else if (BULLET.test(line) || NUMBERED.test(line)) {
      const pattern = BULLET.test(line) ? BULLET : NUMBERED;
      const list = el(pattern === BULLET ? "ul" : "ol");
      while (i < lines.length && (m = lines[i].match(pattern))) {
        list.append(inline(el("li"), m[1]));
        i++;
      }
      root.append(list);
    } else if (QUOTE.test(line)) {
      const quoted = [];
      while (i < lines.length && (m = lines[i].match(QUOTE))) {
        quoted.push(m[1]);
        i++;
      }
      const quote = el("blockquote");
      quote.append(renderMarkdown(quoted.join("\n")));
      root.append(quote);
    } else {
      const para = [line];
      i++;
      while (i < lines.length && lines[i].trim() && !startsBlock(lines[i])) para.push(lines[i++]);
      root.append(inline(el("p"), para.join("\n")));
    }
  }
  return root;
}
