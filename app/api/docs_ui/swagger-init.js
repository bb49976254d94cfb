// Starts Swagger UI on the docs page; a file rather than inline code, so the page's CSP can forbid inline script.
window.addEventListener("load", function () {
  var container = document.getElementById("swagger-ui-container");
  window.ui = SwaggerUIBundle({
    url: container.dataset.specUrl,
    dom_id: "#swagger-ui-container",
    // No badge from the public validator: it would send the spec's URL away and load a foreign image.
    validatorUrl: null
  });
});
