// ReDoc for the hub's OpenAPI document, from the hub's own assets (hub.api.routes.apidocs).
// No web fonts: ReDoc's theme falls back to the system's sans-serif and monospace fonts.
window.Redoc.init("/openapi.json", {}, document.getElementById("redoc"));
