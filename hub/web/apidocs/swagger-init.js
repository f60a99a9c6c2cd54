// Swagger UI for the hub's OpenAPI document, from the hub's own assets (hub.api.routes.apidocs).
// validatorUrl null: by default Swagger UI sends the document to validator.swagger.io.
window.ui = window.SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  layout: "BaseLayout",
  presets: [window.SwaggerUIBundle.presets.apis],
  deepLinking: true,
  showExtensions: true,
  showCommonExtensions: true,
  validatorUrl: null,
});
