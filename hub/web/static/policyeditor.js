// The governance console's policy editor: CodeMirror 6, bundled from the pinned packages into
// /ui/vendor/codemirror.js (hub/web/editor/entry.js, hub/web/assets.py). YAML highlighting,
// line numbers that scroll with the text, and the hub's own errors (each with its line) as
// lint markers: in the gutter, under the line, and in the lint panel (Ctrl-Shift-M; F8 goes
// to the next one). Tab leaves the editor (no keyboard trap); Ctrl-] and Ctrl-[ indent.

import {
  bracketMatching, defaultHighlightStyle, defaultKeymap, drawSelection, EditorState,
  EditorView, highlightActiveLine, highlightActiveLineGutter, highlightSelectionMatches,
  highlightSpecialChars, history, historyKeymap, indentOnInput, keymap, lineNumbers,
  lintGutter, lintKeymap, search, searchKeymap, setDiagnostics, syntaxHighlighting, yaml,
} from "../vendor/codemirror.js";

function change(before, after) {
  // The smallest replacement turning before into after, so that the cursor and the markers
  // of untouched lines stay where they are (the budget form edits one value).
  let from = 0;
  while (from < before.length && from < after.length && before[from] === after[from]) from++;
  let end = before.length;
  let endAfter = after.length;
  while (end > from && endAfter > from && before[end - 1] === after[endAfter - 1]) {
    end--;
    endAfter--;
  }
  return { from, to: end, insert: after.slice(from, endAfter) };
}

export function policyEditor({ text, id, labelledBy, describedBy, onEdit }) {
  // An editor holding text; onEdit() after each change a person makes (not after setText).
  // Returns { dom, text(), setText(value), mark(errors), focus() }.
  let quiet = false;
  const view = new EditorView({
    state: EditorState.create({
      doc: text,
      extensions: [
        lineNumbers(), highlightActiveLineGutter(), lintGutter(), highlightSpecialChars(),
        history(), drawSelection(), indentOnInput(), bracketMatching(), highlightActiveLine(),
        highlightSelectionMatches(), search({ top: true }),
        syntaxHighlighting(defaultHighlightStyle, { fallback: true }), yaml(),
        keymap.of([...defaultKeymap, ...historyKeymap, ...searchKeymap, ...lintKeymap]),
        EditorView.editorAttributes.of({ class: "policy-editor" }),
        EditorView.contentAttributes.of({ id, "aria-labelledby": labelledBy,
          "aria-describedby": describedBy, spellcheck: "false" }),
        EditorView.updateListener.of((update) => {
          if (update.docChanged && !quiet) onEdit();
        }),
      ],
    }),
  });
  return {
    dom: view.dom,
    text: () => view.state.doc.toString(),
    setText(value) {
      quiet = true;
      try {
        view.dispatch({ changes: change(view.state.doc.toString(), value) });
      } finally {
        quiet = false;
      }
    },
    mark(errors) {
      // errors: [{ line, message }] from the hub (1-based lines); each marks its line, from
      // its first character that is not a space.
      const doc = view.state.doc;
      const diagnostics = errors.filter((e) => e.line >= 1 && e.line <= doc.lines)
        .map((e) => {
          const line = doc.line(e.line);
          const indent = line.text.length - line.text.trimStart().length;
          return { from: line.from + indent, to: line.to, severity: "error", source: "tahub",
            message: e.message };
        });
      view.dispatch(setDiagnostics(view.state, diagnostics));
    },
    focus: () => view.focus(),
  };
}
