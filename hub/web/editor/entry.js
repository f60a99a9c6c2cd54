// The parts of CodeMirror 6 that the governance console's policy editor uses
// (hub/web/static/policyeditor.js), from the packages pinned in hub/web/package-lock.json.
// hub/web/assets.py bundles this module with esbuild into hub/web/vendor/codemirror.js (one
// ES module, one copy of @codemirror/state), served at /ui/vendor/codemirror.js.

export { defaultKeymap, history, historyKeymap } from "@codemirror/commands";
export { yaml } from "@codemirror/lang-yaml";
export {
  bracketMatching, defaultHighlightStyle, indentOnInput, syntaxHighlighting,
} from "@codemirror/language";
export { lintGutter, lintKeymap, setDiagnostics } from "@codemirror/lint";
export { highlightSelectionMatches, search, searchKeymap } from "@codemirror/search";
export { EditorState } from "@codemirror/state";
export {
  drawSelection, EditorView, highlightActiveLine, highlightActiveLineGutter,
  highlightSpecialChars, keymap, lineNumbers,
} from "@codemirror/view";
