// @ts-check
/**
 * The app's words in English and Chinese: one catalogue per language, one lookup, `t`.
 * The language is the one the inspector chose (kept in localStorage), else the
 * browser's (`navigator.language`).
 * @module
 */

/** @type {Record<string, Record<string, string>>} */
const CATALOGUES = {
  en: {
    app_name: "Inspections",
    lang_other: "中文",
    lang_other_name: "Switch to Chinese",
    login_title: "Sign in on this tablet",
    login_intro: "The first sign-in registers this tablet with the server. After that the app works without a network; it syncs when it can.",
    username: "Username",
    password: "Password",
    device_name: "Name of this tablet",
    device_default: "Inspection tablet",
    sign_in: "Sign in",
    signing_in: "Signing in…",
    login_failed: "Sign-in failed: {detail}",
    login_offline: "No connection to the server: signing in needs the network once.",
    revoked: "This tablet was revoked by an administrator. Its data was removed from it; changes not yet synced are lost. Sign in again to register it anew.",
    login_expired: "Your sign-in has ended. Sign in again: your data and unsynced changes stay on this tablet.",
    logout: "Sign out",
    online: "Online",
    offline: "Offline",
    pending: "{n} change(s) not synced",
    all_synced: "All changes synced",
    last_sync: "Last sync {time}",
    never_synced: "Never synced",
    sync_now: "Sync now",
    syncing: "Syncing…",
    sync_failed: "Sync failed: {detail}. It will try again.",
    uploading: "Photo {done} of {total}: {pct}%",
    photos_waiting: "{n} photo(s) waiting to upload",
    photos_refused: "{n} photo(s) refused by the server",
    quota_near: "Storage on this tablet is almost full ({used} of {quota} used). Sync to upload photos; do not add large photos until then.",
    not_persisted: "The browser may clear this app's data when storage runs low: sync often.",
    problems_here: "{n} change(s) need your attention",
    attention_title: "Needs your attention",
    attention_none: "Nothing needs your attention.",
    kind_response: "Answer",
    kind_finding: "Finding",
    kind_signoff: "Sign-off",
    my_inspections: "My inspections",
    no_inspections: "No inspections on this tablet yet. Connect to the network and sync to receive the inspections you are assigned to.",
    site: "Site",
    dates: "Planned",
    your_role: "Your role",
    role_lead: "Lead inspector",
    role_member: "Team member",
    links: "Production stages inspected",
    not_started: "Not started yet: no checklist pinned.",
    checklist_missing: "The checklist is not on this tablet yet: sync.",
    answered: "{n} of {total} required answered",
    open_checklist: "Checklist",
    findings: "Findings",
    new_finding: "New finding",
    no_findings: "No findings yet.",
    finding_missing: "This finding is not on this tablet (yet): sync with the network.",
    back: "Back",
    title: "Title",
    objective_evidence: "Objective evidence",
    linked_items: "Linked checklist items",
    add_item: "Link an item",
    choose_item: "Choose an item…",
    references: "References",
    document: "Document",
    section: "Section",
    add_reference: "Add reference",
    classification: "Classification",
    unclassified: "Not classified yet",
    photos: "Photos",
    add_photo: "Take or add a photo",
    photo_pending: "waiting to upload",
    photo_uploaded: "uploaded",
    photo_refused: "refused: {detail}",
    photo_not_here: "on another tablet",
    status: "Status",
    save: "Save",
    saved: "Saved on this tablet",
    title_required: "A finding needs a title.",
    not_synced: "not synced yet",
    note: "Note",
    guidance: "Guidance",
    refs_short: "Refs",
    required: "required",
    optional: "optional",
    limits_both: "Allowed {min} to {max} {unit}",
    limits_min: "At least {min} {unit}",
    limits_max: "At most {max} {unit}",
    unit_only: "In {unit}",
    outside_limits: "Outside the allowed range",
    evidence_rule: "Answer “{answers}” needs {what}",
    need_note: "a note",
    need_photo: "a photo",
    need_note_or_photo: "a note or a photo",
    need_note_and_photo: "a note and a photo",
    yes: "Yes",
    no: "No",
    na: "N/A",
    clear: "Clear",
    repeat_of: "{label} {n}",
    repeat_default: "Repeat",
    add_repeat: "Add another: {label}",
    photo_caption: "Caption",
    item_photos: "Photos for this item",
    rejected_title: "The server refused this change",
    rejected_body: "You entered {sent}. {why}",
    rejected_now: "It was not kept. What the server holds now: {now}.",
    dismiss: "Understood",
    conflict_title: "Changed on two tablets at the same time: {field}",
    conflict_flagged: "Not decided automatically: both values are kept until a supervisor chooses.",
    conflict_lww: "The later change is shown; the other value is kept for the supervisor.",
    conflict_delete: "One tablet deleted this while another changed it: nothing was deleted; a supervisor decides.",
    conflict_kept: "Now shown: {value}",
    conflict_resolved: "Resolved by a supervisor: {value}. Reason: {reason}",
    conflict_by_you: "you, on this tablet",
    conflict_by_you_other: "you, on another tablet",
    conflict_by_other: "another inspector",
    conflict_at: "{who}, {time}",
    field_value: "the answer",
    field_note: "the note",
    field_evidence: "the photos",
    field_title: "the title",
    field_classification: "the classification",
    field_objective_evidence: "the objective evidence",
    field_status: "the status",
    field__deleted: "deleted or changed",
    empty_value: "(empty)",
    sign_off: "Sign off",
    signoff_title: "Sign off: {link}",
    signoff_intro: "Your signature binds exactly what is answered and found for this stage now. Later changes need a reason and are recorded.",
    missing_answers: "{n} required answer(s) missing. Answer them, or sign anyway and say why.",
    incomplete_reason: "Why you sign with answers missing (signed with your name, shown to the supervisor)",
    sign_anyway: "Sign with answers missing",
    disputed: "Disputed",
    disputed_note: "Two inspectors chose different classifications; both are kept until a supervisor decides.",
    none_missing: "Every required item is answered.",
    signer_name: "Signed as",
    signer_note: "A signature prints your account's name; it cannot be changed here.",
    meaning: "Meaning of the signature",
    meaning_authored: "Authored (I performed this inspection)",
    meaning_reviewed: "Reviewed",
    meaning_approved: "Approved",
    sign_button: "Sign",
    signed_by: "Signed by {name} ({meaning}), {time}",
    signed_none: "Not signed off yet.",
    error: "Something went wrong: {detail}",
    cls_critical: "Critical",
    cls_major: "Major",
    cls_other: "Other",
    nmpa_critical: "Serious defect 严重缺陷",
    nmpa_major: "Major defect 主要缺陷",
    nmpa_other: "General defect 一般缺陷",
    pics: "PIC/S",
    nmpa: "NMPA",
    fstatus_draft: "Draft",
    fstatus_submitted: "Submitted",
    fstatus_withdrawn: "Withdrawn",
    fstatus_returned: "Returned by the supervisor",
    fstatus_accepted: "Accepted",
    fstatus_merged: "Merged into another finding",
    istatus_planned: "Planned",
    istatus_in_progress: "In progress",
    istatus_fieldwork_done: "Fieldwork done",
    istatus_under_review: "Under review",
    istatus_closed: "Closed",
    itype_pre_approval: "Pre-approval",
    itype_routine: "Routine",
    itype_for_cause: "For cause",
    itype_joint_cross_province: "Joint, cross-province",
    itype_follow_up: "Follow-up",
    code_out_of_limits: "The number is outside the limits of this item.",
    code_invalid_choice: "That is not one of the allowed answers.",
    code_wrong_type: "That kind of answer does not fit this item.",
    code_evidence_required: "This answer needs a note or a photo.",
    code_reason_required: "This is signed off: a change needs a reason.",
    code_required: "Something required is missing.",
    code_unknown_item: "The item is not in the checklist this inspection uses.",
    code_not_in_scope: "You are not on this inspection's team any more.",
    code_inspection_closed: "The inspection is closed: nothing changes any more.",
    code_inspection_not_started: "The inspection has not been started yet.",
    code_other: "The server did not accept it.",
    stage_mah_oversight: "MAH chain oversight",
    stage_cell_bank: "Cell bank",
    stage_upstream_culture: "Upstream culture",
    stage_harvest_purification: "Harvest and purification",
    stage_viral_clearance: "Viral clearance",
    stage_conjugation: "Payload-linker and conjugation",
    stage_formulation_filling: "Formulation and aseptic filling",
    stage_lyophilisation: "Lyophilisation",
    stage_inspection_packaging: "Visual inspection and packaging",
    stage_qc_laboratory: "QC laboratory",
    stage_cold_chain: "Warehouse, cold chain and transfer",
    stage_qa_release: "QA, quality system and batch release",
    stage_data_integrity: "Data integrity",
  },
  zh: {
    app_name: "检查",
    lang_other: "English",
    lang_other_name: "切换为英文",
    login_title: "在本平板上登录",
    login_intro: "首次登录会在服务器上注册本平板。之后无网络也可使用，有网络时自动同步。",
    username: "用户名",
    password: "密码",
    device_name: "本平板的名称",
    device_default: "检查平板",
    sign_in: "登录",
    signing_in: "正在登录…",
    login_failed: "登录失败：{detail}",
    login_offline: "无法连接服务器：首次登录需要网络。",
    revoked: "管理员已吊销本平板。其数据已从本平板删除，尚未同步的更改已丢失。请重新登录以重新注册。",
    login_expired: "您的登录已过期，请重新登录：数据和未同步的更改仍保留在本平板上。",
    logout: "退出登录",
    online: "在线",
    offline: "离线",
    pending: "{n} 项更改未同步",
    all_synced: "所有更改已同步",
    last_sync: "上次同步 {time}",
    never_synced: "尚未同步",
    sync_now: "立即同步",
    syncing: "正在同步…",
    sync_failed: "同步失败：{detail}。稍后将重试。",
    uploading: "照片 {done}/{total}：{pct}%",
    photos_waiting: "{n} 张照片等待上传",
    photos_refused: "{n} 张照片被服务器拒绝",
    quota_near: "本平板存储空间即将用尽（已用 {used}，共 {quota}）。请同步以上传照片；在此之前请勿添加大照片。",
    not_persisted: "存储空间不足时浏览器可能清除本应用数据：请经常同步。",
    problems_here: "{n} 项更改需要您处理",
    attention_title: "需要您处理",
    attention_none: "没有需要您处理的事项。",
    kind_response: "回答",
    kind_finding: "缺陷",
    kind_signoff: "签署",
    my_inspections: "我的检查",
    no_inspections: "本平板上还没有检查。请连接网络并同步，以接收分配给您的检查。",
    site: "场地",
    dates: "计划日期",
    your_role: "您的角色",
    role_lead: "组长",
    role_member: "组员",
    links: "检查的生产环节",
    not_started: "尚未开始：未固定检查表。",
    checklist_missing: "检查表尚未到达本平板：请同步。",
    answered: "必答项已答 {n}/{total}",
    open_checklist: "检查表",
    findings: "缺陷",
    new_finding: "新建缺陷",
    no_findings: "尚无缺陷。",
    finding_missing: "本平板上（还）没有此缺陷：请联网同步。",
    back: "返回",
    title: "标题",
    objective_evidence: "客观证据",
    linked_items: "关联的检查项",
    add_item: "关联检查项",
    choose_item: "选择检查项…",
    references: "依据",
    document: "文件",
    section: "章节",
    add_reference: "添加依据",
    classification: "缺陷分级",
    unclassified: "尚未分级",
    photos: "照片",
    add_photo: "拍照或添加照片",
    photo_pending: "等待上传",
    photo_uploaded: "已上传",
    photo_refused: "被拒绝：{detail}",
    photo_not_here: "在另一台平板上",
    status: "状态",
    save: "保存",
    saved: "已保存在本平板",
    title_required: "缺陷需要标题。",
    not_synced: "尚未同步",
    note: "备注",
    guidance: "检查指南",
    refs_short: "依据",
    required: "必答",
    optional: "选答",
    limits_both: "允许范围 {min} 至 {max} {unit}",
    limits_min: "至少 {min} {unit}",
    limits_max: "至多 {max} {unit}",
    unit_only: "单位 {unit}",
    outside_limits: "超出允许范围",
    evidence_rule: "回答“{answers}”需要{what}",
    need_note: "备注",
    need_photo: "照片",
    need_note_or_photo: "备注或照片",
    need_note_and_photo: "备注和照片",
    yes: "是",
    no: "否",
    na: "不适用",
    clear: "清除",
    repeat_of: "{label} {n}",
    repeat_default: "重复项",
    add_repeat: "再添加一个：{label}",
    photo_caption: "说明",
    item_photos: "此项的照片",
    rejected_title: "服务器拒绝了此更改",
    rejected_body: "您输入的是 {sent}。{why}",
    rejected_now: "该更改未被保留。服务器现有的值：{now}。",
    dismiss: "知道了",
    conflict_title: "两台平板同时修改了{field}",
    conflict_flagged: "不会自动决定：两个值都保留，由主管选择。",
    conflict_lww: "显示较晚的更改；另一个值保留供主管查看。",
    conflict_delete: "一台平板删除了此记录，另一台同时修改了它：未删除，由主管决定。",
    conflict_kept: "当前显示：{value}",
    conflict_resolved: "主管已处理：{value}。理由：{reason}",
    conflict_by_you: "您，在本平板上",
    conflict_by_you_other: "您，在另一台平板上",
    conflict_by_other: "另一位检查员",
    conflict_at: "{who}，{time}",
    field_value: "回答",
    field_note: "备注",
    field_evidence: "照片",
    field_title: "标题",
    field_classification: "缺陷分级",
    field_objective_evidence: "客观证据",
    field_status: "状态",
    field__deleted: "删除或修改",
    empty_value: "（空）",
    sign_off: "签署",
    signoff_title: "签署：{link}",
    signoff_intro: "您的签名将绑定此环节当前的全部回答和缺陷。之后的更改需要说明理由并被记录。",
    missing_answers: "缺少 {n} 个必答项。请先回答，或说明理由后签署。",
    incomplete_reason: "有必答项未答仍签署的理由（随签名保存，主管可见）",
    sign_anyway: "有未答项仍签署",
    disputed: "有争议",
    disputed_note: "两位检查员选择了不同的分级；两个值都保留，等待主管裁定。",
    none_missing: "所有必答项均已回答。",
    signer_name: "签名人",
    signer_note: "签名打印的是您账户的姓名，此处不能更改。",
    meaning: "签名含义",
    meaning_authored: "编写（本人执行了此检查）",
    meaning_reviewed: "审核",
    meaning_approved: "批准",
    sign_button: "签署",
    signed_by: "{name} 已签署（{meaning}），{time}",
    signed_none: "尚未签署。",
    error: "出错了：{detail}",
    cls_critical: "关键",
    cls_major: "主要",
    cls_other: "其他",
    nmpa_critical: "严重缺陷",
    nmpa_major: "主要缺陷",
    nmpa_other: "一般缺陷",
    pics: "PIC/S",
    nmpa: "NMPA",
    fstatus_draft: "草稿",
    fstatus_submitted: "已提交",
    fstatus_withdrawn: "已撤回",
    fstatus_returned: "主管退回",
    fstatus_accepted: "已接受",
    fstatus_merged: "已合并到另一缺陷",
    istatus_planned: "已计划",
    istatus_in_progress: "进行中",
    istatus_fieldwork_done: "现场检查完成",
    istatus_under_review: "审核中",
    istatus_closed: "已关闭",
    itype_pre_approval: "批准前检查",
    itype_routine: "常规检查",
    itype_for_cause: "有因检查",
    itype_joint_cross_province: "跨省联合检查",
    itype_follow_up: "跟踪检查",
    code_out_of_limits: "数值超出此项的允许范围。",
    code_invalid_choice: "这不是允许的回答之一。",
    code_wrong_type: "此类回答不适用于此项。",
    code_evidence_required: "此回答需要备注或照片。",
    code_reason_required: "已签署：更改需要说明理由。",
    code_required: "缺少必填内容。",
    code_unknown_item: "此项不在本检查使用的检查表中。",
    code_not_in_scope: "您已不在本检查组中。",
    code_inspection_closed: "检查已关闭，不能再更改。",
    code_inspection_not_started: "检查尚未开始。",
    code_other: "服务器未接受。",
    stage_mah_oversight: "持有人链条监督",
    stage_cell_bank: "细胞库",
    stage_upstream_culture: "上游培养",
    stage_harvest_purification: "收获与纯化",
    stage_viral_clearance: "病毒清除",
    stage_conjugation: "毒素连接子与偶联",
    stage_formulation_filling: "配制与无菌灌装",
    stage_lyophilisation: "冻干",
    stage_inspection_packaging: "灯检与包装",
    stage_qc_laboratory: "质量控制实验室",
    stage_cold_chain: "仓储、冷链与转运",
    stage_qa_release: "质量保证、质量体系与放行",
    stage_data_integrity: "数据可靠性",
  },
};

export const LANGS = Object.keys(CATALOGUES);

/** @returns {string} */
function initialLang() {
  try {
    const kept = globalThis.localStorage?.getItem("inspectsync.lang");
    if (kept && CATALOGUES[kept]) return kept;
  } catch {
    /* storage unavailable */
  }
  const nav = (globalThis.navigator?.language || "en").toLowerCase();
  return nav.startsWith("zh") ? "zh" : "en";
}

let lang = initialLang();

export function currentLang() {
  return lang;
}

/** @param {string} next */
export function setLang(next) {
  if (!CATALOGUES[next]) return;
  lang = next;
  try {
    globalThis.localStorage?.setItem("inspectsync.lang", next);
  } catch {
    /* storage unavailable */
  }
}

/**
 * The text of `key` in the current language (English when a catalogue lacks it), with
 * `{name}` placeholders filled from `params`.
 * @param {string} key @param {Record<string, any>} [params]
 */
export function t(key, params = {}) {
  const text = CATALOGUES[lang][key] ?? CATALOGUES.en[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (m, name) => (name in params ? String(params[name]) : m));
}

/** Whether the catalogue has `key`. @param {string} key */
export function has(key) {
  return key in CATALOGUES.en;
}

/**
 * Authored bilingual text (`{en, zh}` of a checklist) in the current language, else the
 * other one.
 * @param {any} text
 */
export function tx(text) {
  if (!text) return "";
  if (typeof text === "string") return text;
  return text[lang] || text.en || text.zh || "";
}

/** A time to the minute, in the tablet's zone. @param {string | null | undefined} iso */
export function when(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  return new Intl.DateTimeFormat(lang === "zh" ? "zh-CN" : "en-GB", {
    dateStyle: "medium",
    timeStyle: "short",
  }).format(d);
}

/** A calendar date. @param {string | null | undefined} day */
export function day(day) {
  if (!day) return "";
  const d = new Date(`${day}T12:00:00`);
  if (Number.isNaN(d.getTime())) return String(day);
  return new Intl.DateTimeFormat(lang === "zh" ? "zh-CN" : "en-GB", { dateStyle: "medium" }).format(d);
}

/** Bytes for people. @param {number} n */
export function bytes(n) {
  const units = ["B", "KB", "MB", "GB", "TB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}
