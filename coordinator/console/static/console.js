// medfed console: re-render the page's tables from its JSON endpoint every second.
// Text goes in with textContent only (never innerHTML), so names from nodes cannot inject markup.
"use strict";

(function () {
  const POLL_MS = 1000;
  const main = document.querySelector("main[data-poll]");
  if (!main) {
    return;
  }
  const url = main.dataset.poll;
  const view = main.dataset.view;
  const live = document.getElementById("live");

  function el(tag, text, className) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) {
      node.textContent = String(text);
    }
    if (className) {
      node.className = className;
    }
    return node;
  }

  function replaceBody(tableId, rows) {
    const table = document.getElementById(tableId);
    if (!table) {
      return;
    }
    const body = document.createElement("tbody");
    rows.forEach((row) => body.appendChild(row));
    table.replaceChild(body, table.tBodies[0]);
  }

  function jobHref(id) {
    return "/console/jobs/" + encodeURIComponent(id);
  }

  function jobCells(tr, job) {
    const first = el("td");
    const link = el("a", job.id);
    link.href = jobHref(job.id);
    first.appendChild(link);
    tr.appendChild(first);
    tr.appendChild(el("td", job.kind));
    tr.appendChild(el("td", job.status, "status-" + job.status));
    tr.appendChild(el("td", job.submitter));
    tr.appendChild(el("td", job.created));
    tr.appendChild(el("td", job.started));
    tr.appendChild(el("td", job.finished));
    return tr;
  }

  const renderers = {
    nodes(data) {
      replaceBody(
        "nodes",
        data.nodes.map((node) => {
          const tr = el("tr");
          tr.dataset.nodeId = node.id;
          tr.appendChild(el("td", node.name));
          tr.appendChild(el("td", node.id));
          tr.appendChild(el("td", node.state, "state-" + node.state));
          tr.appendChild(el("td", node.version));
          tr.appendChild(el("td", node.last_seen));
          tr.appendChild(
            el("td", node.skew + (node.skew_flagged ? " \u26a0" : ""), node.skew_flagged ? "skew-flagged" : ""),
          );
          return tr;
        }),
      );
    },
    jobs(data) {
      replaceBody(
        "jobs",
        data.jobs.map((job) => {
          const tr = el("tr");
          tr.dataset.jobId = job.id;
          return jobCells(tr, job);
        }),
      );
    },
    job(data) {
      replaceBody("job", [jobCells(el("tr"), data.job)]);
      const error = document.getElementById("job-error");
      if (error) {
        error.textContent = data.job.error;
      }
      const table = document.getElementById("rounds");
      if (!table) {
        return;
      }
      const head = el("tr");
      ["Round", "Status", "Replies"].forEach((h) => head.appendChild(el("th", h)));
      data.nodes.forEach((n) => head.appendChild(el("th", n.status ? n.id + " (" + n.status + ")" : n.id)));
      const thead = document.createElement("thead");
      thead.appendChild(head);
      table.replaceChild(thead, table.tHead);
      replaceBody(
        "rounds",
        data.rounds.map((r) => {
          const tr = el("tr");
          tr.dataset.round = String(r.round);
          tr.appendChild(el("td", r.round));
          tr.appendChild(el("td", r.status, "status-" + r.status));
          tr.appendChild(el("td", r.replies));
          r.cells.forEach((c) => {
            const td = el("td", null, "cell-" + c.state);
            td.appendChild(el("span", c.state, "state"));
            td.appendChild(el("span", c.detail, "detail"));
            tr.appendChild(td);
          });
          return tr;
        }),
      );
    },
  };

  function say(state) {
    if (live) {
      live.textContent = state;
      live.dataset.state = state;
    }
  }

  async function tick() {
    try {
      const response = await fetch(url, {
        credentials: "same-origin",
        cache: "no-store",
        headers: { Accept: "application/json" },
      });
      if (response.status === 401) {
        window.location.assign("/console/login");
        return;
      }
      if (response.ok) {
        renderers[view](await response.json());
        main.dataset.updated = String(Date.now());
        say("live");
      } else {
        say("error " + response.status);
      }
    } catch (_error) {
      say("coordinator unreachable");
    }
    window.setTimeout(tick, POLL_MS);
  }

  window.setTimeout(tick, POLL_MS);
})();
