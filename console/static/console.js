// The admin console's script: copy buttons, auto-submitting switches, the sync scope's tree and
// the live status of a running sync task. Everything works without it (plain forms and links); nothing here is inline.
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
        // A clipboard that neither answers nor refuses (an unfocused page) must not leave the
        // button silent: after a second, fall back to selecting the text.
        await Promise.race([
          navigator.clipboard.writeText(text),
          new Promise((_, no) => setTimeout(() => no(new Error("clipboard timeout")), 1000)),
        ]);
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

  // The sync scope's tree: a chosen department brings its sub-departments, so their boxes show
  // checked and are left out of the form; choosing one selects "chosen departments".
  const tree = document.getElementById("scope-tree");
  if (tree) {
    const below = (box) => box.parentElement.querySelectorAll(":scope > details input[type=checkbox]");
    const follow = (box) => below(box).forEach((b) => {
      if (box.checked) b.checked = true;
      else if (b.disabled) b.checked = false;
      b.disabled = box.checked;
    });
    const all = document.getElementById("scope-all");
    const chosen = document.getElementById("scope-chosen");
    const dim = () => tree.classList.toggle("dim", !!(all && all.checked));
    tree.querySelectorAll("input[type=checkbox]").forEach((box) => {
      if (box.checked) follow(box);
      box.addEventListener("change", () => {
        follow(box);
        if (box.checked && chosen) chosen.checked = true;
        dim();
      });
    });
    [all, chosen].forEach((r) => r && r.addEventListener("change", dim));
    dim();
  }

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

  // Said last: the page's handlers are attached (a deferred script can run after the page shows).
  document.documentElement.dataset.scripted = "1";
});
