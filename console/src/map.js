// The map: my subtree's cells shaded by their cases, the open cases by SLA light, a heat layer and hotspots.
import L from "leaflet";
import { crs, get, query, settings } from "./api.js";
import { LIGHT, STATUS } from "./labels.js";
import { el } from "./util.js";

const OPEN = "submitted,accepted,assigned,in_progress,on_hold,resolved";
const LIGHT_COLOUR = { green: "#2e7d32", yellow: "#f9a825", red: "#c62828" };
const POLL_MS = 60_000;

function shade(counts) {
  const red = counts.overdue || 0;
  const open = counts.open || 0;
  if (red) return { fillColor: "#c62828", fillOpacity: Math.min(0.15 + red * 0.08, 0.55) };
  if (open) return { fillColor: "#f9a825", fillOpacity: Math.min(0.1 + open * 0.05, 0.45) };
  return { fillColor: "#90a4ae", fillOpacity: 0.08 };
}

// A tooltip makes Leaflet's path focusable (it opens on focus): the same words name it for a screen reader.
function label(layer, text) {
  layer.bindTooltip(text);
  layer.getElement()?.setAttribute("aria-label", text);
}

function openCount(counts) {
  const by = counts.by_status || {};
  return OPEN.split(",").reduce((sum, s) => sum + (by[s] || 0), 0);
}

export function mapView(ctx) {
  const legend = el(
    "div",
    { class: "legend", "aria-label": "图例" },
    Object.entries(LIGHT).map(([key, label]) => el("span", {}, el("i", { class: `dot dot-${key}` }), label)),
    el("span", {}, el("i", { class: "dot dot-none" }), "未计时"),
    el("span", {}, el("i", { class: "dot dot-escalated" }), "已升级"),
  );
  const status = el("span", { class: "muted", role: "status" });
  const container = el("div", { id: "map", class: "map", role: "region", "aria-label": "网格地图" });
  const root = el(
    "section",
    { class: "view", id: "map-view", "aria-labelledby": "map-title" },
    el("h2", { id: "map-title" }, "网格地图"),
    el("div", { class: "toolbar" }, legend, status),
    container,
  );
  let map = null;
  let layers = null;
  let timer = null;
  let fitted = false;
  let heatMax = 5;

  function heatStyle(count) {
    const share = count / heatMax;
    return { stroke: false, fillColor: share > 0.66 ? "#b71c1c" : share > 0.33 ? "#ef6c00" : "#fbc02d", fillOpacity: 0.2 + share * 0.45 };
  }

  function build() {
    const cfg = settings();
    map = L.map(container, { zoomSnap: 0.25, zoomControl: true, attributionControl: true });
    if (cfg.tile_url) {
      L.tileLayer(cfg.tile_url, { attribution: cfg.tile_attribution, maxZoom: 19, subdomains: "1234" }).addTo(map);
    } else {
      container.classList.add("no-tiles");
    }
    // One pane per layer, stacked in this order whatever loads first: cases always on top, clickable.
    [["cells", 410], ["heat", 420], ["hotspots", 430], ["cases", 450]].forEach(([name, z]) => {
      map.createPane(name).style.zIndex = String(z);
    });
    layers = {
      cells: L.geoJSON(null, { pane: "cells", style: { color: "#455a64", weight: 1, fillOpacity: 0.05 } }).addTo(map),
      // Not interactive: the squares must not catch the clicks meant for the cases above them.
      heat: L.geoJSON(null, { pane: "heat", interactive: false, style: (f) => heatStyle(f.properties.count || 0) }).addTo(map),
      // A cluster whose points lie on a line comes as its centroid: a ring, not Leaflet's image marker.
      hotspots: L.geoJSON(null, { pane: "hotspots", pointToLayer: (_f, at) => L.circleMarker(at, { radius: 14, pane: "hotspots" }) }).addTo(map),
      cases: L.layerGroup().addTo(map),
    };
    L.control
      .layers(null, { 网格: layers.cells, 热力图: layers.heat, 热点聚类: layers.hotspots, 案件: layers.cases }, { collapsed: false })
      .addTo(map);
    map.setView([30.25, 120.12], 13);
  }

  async function loadCells() {
    const rootCell = ctx.rootCell;
    const c = crs();
    const [cells, summary] = await Promise.all([
      get(`/cells.geojson${query({ code: rootCell.code, crs: c })}`),
      get(`/cells/${rootCell.id}/reports/summary`),
    ]);
    // Shaded one level further down when there is one (a district's communities, not its three streets): a few
    // large areas that all hold an overdue case would all be red and tell the supervisor nothing.
    const children = summary.children.filter((child) => child.cell.level !== "grid");
    const parents = children.length ? children.map((child) => child.cell) : [rootCell];
    const outlined = new Set(children.map((child) => child.cell.code));
    // Open cases from the cell summary (by status); overdue ones from the statistics' overdue backlog (open and
    // late now): the summary's red counts closed late cases too.
    const figures = await Promise.all(
      parents.map((parent) =>
        Promise.all([
          parent.id === rootCell.id ? summary : get(`/cells/${parent.id}/reports/summary`),
          get(`/stats/summary${query({ cell_id: parent.id })}`),
        ]),
      ),
    );
    const byCode = new Map();
    for (const [counts, stats] of figures) {
      const overdue = new Map(stats.children.map((row) => [row.cell.code, row.overdue_backlog]));
      for (const child of counts.children) {
        byCode.set(child.cell.code, { open: openCount(child), overdue: overdue.get(child.cell.code) || 0 });
      }
    }
    layers.cells.clearLayers();
    layers.cells.addData(cells);
    layers.cells.eachLayer((layer) => {
      const props = layer.feature.properties || {};
      const counts = byCode.get(props.code);
      if (counts) {
        layer.setStyle({ color: "#455a64", weight: 1.2, ...shade(counts) });
        label(layer, `${props.name}：在办 ${counts.open}，超期 ${counts.overdue}`);
      } else if (outlined.has(props.code)) {
        layer.setStyle({ color: "#102a43", weight: 2.5, fill: false });
        label(layer, props.name);
      } else {
        layer.setStyle({ color: "#78909c", weight: 0.6, fillOpacity: 0 });
      }
    });
    // The outlines of the larger areas over the shading of the smaller ones.
    layers.cells.eachLayer((layer) => outlined.has((layer.feature.properties || {}).code) && layer.bringToFront());
    if (!fitted && layers.cells.getLayers().length) {
      map.fitBounds(layers.cells.getBounds(), { padding: [10, 10], animate: false });
      fitted = true;
    }
  }

  async function loadCases() {
    const c = crs();
    const [points, escalated] = await Promise.all([
      get(`/reports.geojson${query({ status: OPEN, cell_id: ctx.rootCell.id, crs: c })}`),
      get(`/escalations${query({ cell_id: ctx.rootCell.id, page_size: 100 })}`),
    ]);
    const escalatedIds = new Set(escalated.items.map((item) => item.id));
    layers.cases.clearLayers();
    for (const feature of points.features) {
      if (!feature.geometry) continue;
      const p = feature.properties;
      const [lon, lat] = feature.geometry.coordinates;
      const up = escalatedIds.has(p.id);
      const marker = L.circleMarker([lat, lon], {
        radius: up ? 9 : 6,
        color: up ? "#000" : "#fff",
        weight: up ? 3 : 1.5,
        fillColor: LIGHT_COLOUR[p.sla_state] || "#607d8b",
        fillOpacity: 0.9,
        className: `case-marker case-${p.id}${up ? " escalated" : ""}`,
        pane: "cases",
      });
      const button = el("button", { type: "button", class: "link", onclick: () => ctx.openCase(p.id) }, "打开案件");
      marker.bindPopup(
        el("div", {}, el("strong", {}, p.case_number), el("br"), `${STATUS[p.status] || p.status} · ${LIGHT[p.sla_state] || "未计时"}${up ? " · 已升级" : ""}`, el("br"), button),
      );
      marker.on("click", () => marker.openPopup());
      // Reachable by keyboard too: Tab to the point, Enter opens the case. On every add: Leaflet draws a new
      // element each time the layer control shows the layer again.
      marker.on("add", () => {
        const node = marker.getElement();
        node.setAttribute("tabindex", "0");
        node.setAttribute("role", "button");
        node.setAttribute("aria-label", `${p.case_number} ${STATUS[p.status] || p.status} ${LIGHT[p.sla_state] || "未计时"}${up ? " 已升级" : ""}`);
        node.addEventListener("keydown", (event) => {
          if (event.key !== "Enter" && event.key !== " ") return;
          event.preventDefault();
          ctx.openCase(p.id);
        });
      });
      layers.cases.addLayer(marker);
    }
    status.textContent = `在办案件 ${points.features.length} 件，其中升级 ${escalatedIds.size} 件${points.truncated ? "（已截断）" : ""}`;
  }

  async function loadAnalytics() {
    const c = crs();
    const [heat, hotspots] = await Promise.all([
      get(`/analytics/heatmap${query({ cell_id: ctx.rootCell.id, crs: c, size_m: 250 })}`),
      get(`/analytics/hotspots${query({ cell_id: ctx.rootCell.id, crs: c, min_points: 3 })}`),
    ]);
    // Relative to the busiest square, but a handful of cases is not yet a hot spot.
    heatMax = Math.max(5, ...heat.features.map((f) => f.properties.count || 0));
    layers.heat.clearLayers();
    layers.heat.addData(heat);
    layers.hotspots.clearLayers();
    layers.hotspots.addData(hotspots);
    layers.hotspots.eachLayer((layer) => {
      if (layer.setStyle) layer.setStyle({ color: "#6a1b9a", weight: 2, dashArray: "4 3", fillOpacity: 0.1 });
      layer.bindTooltip(`热点：${layer.feature.properties.count} 件（在办 ${layer.feature.properties.open_count}）`);
    });
    // A cluster's hull spans a few dozen metres, a few pixels at the district's zoom: a ring at its centroid,
    // sized by its cases, shows it at any zoom.
    for (const feature of hotspots.features) {
      const { centroid, count, open_count: open } = feature.properties;
      if (!centroid) continue;
      const ring = L.circleMarker([centroid[1], centroid[0]], {
        pane: "hotspots", radius: Math.min(10 + count, 30), color: "#6a1b9a", weight: 2, dashArray: "4 3", fillOpacity: 0.08, className: "hotspot",
      });
      label(ring, `热点：${count} 件（在办 ${open}）`);
      layers.hotspots.addLayer(ring);
    }
  }

  async function load() {
    try {
      await Promise.all([loadCells(), loadCases(), loadAnalytics()]);
    } catch (err) {
      status.textContent = `加载失败：${err.message}`;
    }
  }

  return {
    root,
    title: "网格地图",
    show() {
      if (!map) build();
      // The container was hidden: Leaflet measures it again.
      setTimeout(() => map.invalidateSize(), 0);
      load();
      clearInterval(timer);
      timer = setInterval(loadCases, POLL_MS);
    },
    hide() {
      clearInterval(timer);
    },
  };
}
