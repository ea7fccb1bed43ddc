// The admin console's script: copy buttons, auto-submitting switches, and the live status of a
// running sync task. Everything works without it (plain forms and links); nothing here is inline.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const lang = document.documentElement.lang;
  const copied = lang === "en" ? "Copied" : "已复制";

  // Copy buttons: data-copy names the element whose text is copied.
  document.querySelectorAll("button[data-copy]").forEach((b) => {
    b.addEventListener("click", async () => {
      const el = document.getElementById(b.dataset.copy);
      if (!el) return;
      const text = el.textContent.trim();
      let ok = false;
      try {
        await navigator.clipboard.writeText(text);
        ok = true;
      } catch (e) {
        // Without clipboard permission: select the text and use the legacy command.
        const r = document.createRange();
        r.selectNodeContents(el);
        const s = window.getSelection();
        s.removeAllRanges();
        s.addRange(r);
        ok = document.execCommand("copy");
      }
      if (ok) {
        b.textContent = copied;
        b.dataset.copied = "1";
      }
    });
  });

  // A select or checkbox marked data-autosubmit submits its form when changed.
  document.querySelectorAll("[data-autosubmit]").forEach((el) => {
    el.addEventListener("change", () => el.form && el.form.requestSubmit());
  });

  // A running task: poll the admin API (the same session) until it ends, then reload.
  const live = document.querySelector("[data-task-url]");
  if (live) {
    const started = Date.parse(live.dataset.started);
    const elapsed = document.getElementById("elapsed");
    const tick = async () => {
      if (elapsed && !isNaN(started)) elapsed.textContent = Math.round((Date.now() - started) / 1000) + " s";
      try {
        const r = await fetch(live.dataset.taskUrl, { headers: { Accept: "application/json" }, credentials: "same-origin" });
        if (r.ok) {
          const t = await r.json();
          if (t.status !== "running") {
            location.reload();
            return;
          }
        }
      } catch (e) { /* try again */ }
      setTimeout(tick, 700);
    };
    setTimeout(tick, 300);
  }
});
