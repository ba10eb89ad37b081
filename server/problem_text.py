"""What problem details say, in English and Chinese: one catalogue, keyed by code.

``TITLES`` gives each code's ``title`` in both languages. ``DETAILS`` gives a ``detail``
for each code (``"code"``) and, where the engine names the field at fault, for that code
at that field (``"code@field"``): the Chinese answer takes the most specific entry. The
English answer keeps the engine's own message, which says more (names, numbers); the
English entries here say what the Chinese ones say, for review and for the rare problem
without a message. A code-level entry ends with ``{at}``, filled with the field if the
problem names one (``（字段：x）`` / `` (field: x)``), else with nothing; entries may
use ``{limit}``, ``{retry_after}`` where the code always carries them.

``tests/server/test_problem_text.py`` fails if a code, a language or a field the engine
raises with is missing here.
"""

from __future__ import annotations

__all__ = ["DETAILS", "TITLES"]

# code -> title
TITLES: dict[str, dict[str, str]] = {
    "validation_failed": {
        "en": "The request is malformed or a field has the wrong type",
        "zh": "请求格式有误，或某字段类型不对",
    },
    "too_deep": {"en": "The body is nested too deep to decode", "zh": "请求体嵌套过深，无法解析"},
    "not_authenticated": {"en": "Authentication is required", "zh": "需要登录认证"},
    "token_invalid": {
        "en": "The access token is invalid or expired",
        "zh": "访问令牌无效或已过期",
    },
    "invalid_credentials": {"en": "Wrong username or password", "zh": "用户名或密码错误"},
    "user_disabled": {"en": "The account is disabled", "zh": "该账户已停用"},
    "device_revoked": {"en": "The device has been revoked", "zh": "该设备已被吊销"},
    "refresh_token_invalid": {"en": "Unknown refresh token", "zh": "无法识别的刷新令牌"},
    "refresh_token_reused": {
        "en": "Refresh token reused: the login is revoked",
        "zh": "刷新令牌被重复使用：此次登录已被吊销",
    },
    "refresh_token_revoked": {
        "en": "The refresh token has been revoked",
        "zh": "刷新令牌已被吊销",
    },
    "refresh_token_expired": {"en": "The refresh token has expired", "zh": "刷新令牌已过期"},
    "forbidden": {"en": "Your role may not do this", "zh": "您的角色无权执行此操作"},
    "reauthentication_failed": {
        "en": "The password given to sign is not the signer's",
        "zh": "签署时输入的密码不是签署人本人的密码",
    },
    "inspection_closed": {"en": "The inspection is closed", "zh": "该检查已关闭"},
    "not_found": {"en": "Not found", "zh": "未找到"},
    "evidence_lost": {
        "en": "The file's bytes are lost until it is uploaded again",
        "zh": "该文件的内容已丢失，需重新上传",
    },
    "method_not_allowed": {"en": "Method not allowed", "zh": "不允许使用该请求方法"},
    "not_acceptable": {"en": "Not acceptable", "zh": "无法提供所要求的格式"},
    "already_exists": {"en": "It exists already", "zh": "已存在"},
    "offset_mismatch": {"en": "The upload is at another offset", "zh": "上传的当前偏移量与此不符"},
    "invalid_transition": {
        "en": "That status change is not allowed now",
        "zh": "当前不允许这一状态变更",
    },
    "version_immutable": {
        "en": "A published version is never edited",
        "zh": "已发布的版本不可修改",
    },
    "upload_expired": {"en": "The upload expired", "zh": "上传已过期"},
    "revision_mismatch": {
        "en": "The object changed since the revision you based this on",
        "zh": "对象在您所依据的版本之后已被修改",
    },
    "tus_version_unsupported": {
        "en": "Send Tus-Resumable: 1.0.0",
        "zh": "请发送 Tus-Resumable: 1.0.0",
    },
    "body_too_large": {"en": "The request body is too large", "zh": "请求体过大"},
    "file_too_large": {
        "en": "The file is larger than the limit per file",
        "zh": "文件超过单个文件的大小上限",
    },
    "inspection_quota_exceeded": {
        "en": "The inspection's evidence would pass its limit",
        "zh": "该检查的证据总量将超过上限",
    },
    "unsupported_media_type": {"en": "Unsupported media type", "zh": "不支持的内容类型"},
    "unsupported_file_type": {
        "en": "The file is not an accepted type",
        "zh": "不接受该类型的文件",
    },
    "range_not_satisfiable": {"en": "The range is outside the file", "zh": "请求的范围超出文件"},
    "invalid_input": {"en": "The input breaks a rule", "zh": "输入不符合规则"},
    "hash_mismatch": {
        "en": "The file's SHA-256 is not the one announced",
        "zh": "文件的 SHA-256 与声明的不一致",
    },
    "upload_locked": {
        "en": "Another request is writing this upload",
        "zh": "另一个请求正在写入此上传",
    },
    "rate_limited": {"en": "Too many attempts", "zh": "尝试次数过多"},
    "checksum_mismatch": {
        "en": "The chunk does not match its checksum",
        "zh": "数据块与其校验和不符",
    },
    "internal_error": {"en": "Internal server error", "zh": "服务器内部错误"},
    "storage_error": {"en": "The database is not available", "zh": "数据库不可用"},
    "overloaded": {
        "en": "The server is at its limit; try again after Retry-After",
        "zh": "服务器已达处理上限，请在 Retry-After 所示时间后重试",
    },
}

# "code" or "code@field" -> detail
DETAILS: dict[str, dict[str, str]] = {
    # --- by code ----------------------------------------------------------------------
    "validation_failed": {
        "en": "The request cannot be read, or a value has the wrong type or form{at}.",
        "zh": "无法读取请求，或某个值的类型、格式不对{at}。",
    },
    "too_deep": {
        "en": "The body is nested deeper than the server decodes (about 1,000 levels){at}.",
        "zh": "请求体嵌套层数超过服务器可解析的深度（约 1,000 层）{at}。",
    },
    "not_authenticated": {
        "en": "Sign in and send Authorization: Bearer <access token>{at}.",
        "zh": "请先登录，并发送 Authorization: Bearer <访问令牌>{at}。",
    },
    "token_invalid": {
        "en": "The token is invalid or has expired: refresh it or sign in again{at}.",
        "zh": "令牌无效或已过期：请刷新令牌或重新登录{at}。",
    },
    "invalid_credentials": {
        "en": "The username or the password is wrong{at}.",
        "zh": "用户名或密码错误{at}。",
    },
    "user_disabled": {
        "en": "This account is disabled or no longer exists{at}.",
        "zh": "该账户已停用或已不存在{at}。",
    },
    "device_revoked": {
        "en": "This device has been revoked: an administrator must register it again{at}.",
        "zh": "该设备已被吊销，需由管理员重新登记{at}。",
    },
    "refresh_token_invalid": {
        "en": "This refresh token is unknown: sign in again{at}.",
        "zh": "无法识别此刷新令牌，请重新登录{at}。",
    },
    "refresh_token_reused": {
        "en": "This refresh token was used before, so the whole login is revoked: sign in"
        " again{at}.",
        "zh": "此刷新令牌已被使用过，整个登录因此被吊销，请重新登录{at}。",
    },
    "refresh_token_revoked": {
        "en": "This refresh token has been revoked: sign in again{at}.",
        "zh": "此刷新令牌已被吊销，请重新登录{at}。",
    },
    "refresh_token_expired": {
        "en": "This refresh token has expired: sign in again{at}.",
        "zh": "此刷新令牌已过期，请重新登录{at}。",
    },
    "forbidden": {
        "en": "Your role or authority may not do this{at}.",
        "zh": "您的角色或所属机构无权执行此操作{at}。",
    },
    "reauthentication_failed": {
        "en": "A signature needs the signer's own password, typed again at the moment of"
        " signing{at}.",
        "zh": "签署须由签署人在签署时再次输入本人密码{at}。",
    },
    "inspection_closed": {
        "en": "The inspection is closed: nothing more is added to it{at}.",
        "zh": "该检查已关闭，不能再添加任何内容{at}。",
    },
    "not_found": {
        "en": "It does not exist, or you may not see it{at}.",
        "zh": "该对象不存在，或您无权查看{at}。",
    },
    "evidence_lost": {
        "en": "The file's bytes are lost; it is listed as missing until a tablet that holds"
        " it uploads it again{at}.",
        "zh": "该文件的内容已丢失；在持有它的平板重新上传之前，它被列为缺失{at}。",
    },
    "method_not_allowed": {
        "en": "This path does not take this method{at}.",
        "zh": "此路径不接受该请求方法{at}。",
    },
    "not_acceptable": {
        "en": "The server cannot answer in a format the Accept header allows{at}.",
        "zh": "服务器无法以 Accept 请求头允许的格式作答{at}。",
    },
    "already_exists": {
        "en": "An object with this identity exists already{at}.",
        "zh": "具有该标识的对象已存在{at}。",
    },
    "offset_mismatch": {
        "en": "The upload is at another offset: ask its offset (HEAD) and send from there{at}.",
        "zh": "上传的当前偏移量与此不符：请先查询偏移量（HEAD），再从该处继续发送{at}。",
    },
    "invalid_transition": {
        "en": "This is not allowed in the object's present status{at}.",
        "zh": "对象当前的状态不允许此操作{at}。",
    },
    "version_immutable": {
        "en": "A published or retired version is never changed: create a new version{at}.",
        "zh": "已发布或已停用的版本不可更改，请创建新版本{at}。",
    },
    "upload_expired": {
        "en": "The upload was not completed in time and is deleted: create a new one{at}.",
        "zh": "上传未在时限内完成，已被删除，请重新创建上传{at}。",
    },
    "revision_mismatch": {
        "en": "It changed since the revision you based this on: read it again and retry{at}.",
        "zh": "该对象在您所依据的版本之后已被修改，请重新读取后再试{at}。",
    },
    "tus_version_unsupported": {
        "en": "This server speaks tus 1.0.0: send Tus-Resumable: 1.0.0{at}.",
        "zh": "本服务器使用 tus 1.0.0 协议，请发送 Tus-Resumable: 1.0.0{at}。",
    },
    "body_too_large": {
        "en": "The request body is larger than the server accepts{at}.",
        "zh": "请求体超过服务器接受的大小{at}。",
    },
    "file_too_large": {
        "en": "The file is larger than the limit of {limit} bytes per file{at}.",
        "zh": "文件超过单个文件 {limit} 字节的上限{at}。",
    },
    "inspection_quota_exceeded": {
        "en": "The inspection holds {used} bytes of evidence; this file would pass its limit"
        " of {limit} bytes{at}.",
        "zh": "该检查已有 {used} 字节的证据，此文件将使其超过 {limit} 字节的上限{at}。",
    },
    "unsupported_media_type": {
        "en": "The server does not take this Content-Type here{at}.",
        "zh": "此处不接受该 Content-Type{at}。",
    },
    "unsupported_file_type": {
        "en": "The file is none of JPEG, PNG, HEIC/HEIF, PDF or MP4 (judged by its bytes); the"
        " upload is discarded{at}.",
        "zh": "文件不是 JPEG、PNG、HEIC/HEIF、PDF 或 MP4（按文件内容判断），此次上传已丢弃{at}。",
    },
    "range_not_satisfiable": {
        "en": "The range asked for is outside the file{at}.",
        "zh": "请求的范围超出文件长度{at}。",
    },
    "invalid_input": {
        "en": "The input is well-formed but breaks a rule{at}.",
        "zh": "输入格式正确，但不符合业务规则{at}。",
    },
    "hash_mismatch": {
        "en": "The file's SHA-256 is not the one announced; the upload is discarded{at}.",
        "zh": "文件的 SHA-256 与声明的不一致，此次上传已丢弃{at}。",
    },
    "upload_locked": {
        "en": "Another request is still writing to this upload: retry in {retry_after} s{at}.",
        "zh": "另一个请求仍在写入此上传，请在 {retry_after} 秒后重试{at}。",
    },
    "rate_limited": {
        "en": "Too many failed attempts: try again in {retry_after} s{at}.",
        "zh": "失败次数过多，请在 {retry_after} 秒后重试{at}。",
    },
    "checksum_mismatch": {
        "en": "The chunk does not match its checksum; it was not stored, send it again{at}.",
        "zh": "数据块与其校验和不符，未被保存，请重新发送{at}。",
    },
    "internal_error": {
        "en": "An unexpected error occurred; it has been logged{at}.",
        "zh": "发生了意外错误，已记录在日志中{at}。",
    },
    "storage_error": {
        "en": "The database is not available; try again later{at}.",
        "zh": "数据库暂不可用，请稍后重试{at}。",
    },
    "overloaded": {
        "en": "The server is at its limit of {limit}; try again in {retry_after} s{at}.",
        "zh": "服务器已达“{limit}”的上限，请在 {retry_after} 秒后重试{at}。",
    },
    # --- by code and field: where the engine names the field at fault ------------------
    "already_exists@id": {
        "en": "An object with this id exists already.",
        "zh": "已存在具有此 id 的对象。",
    },
    "already_exists@stage_type": {
        "en": "This stage type already has a checklist template.",
        "zh": "该工序类型已有检查表模板。",
    },
    "already_exists@template_key": {
        "en": "This template already has a draft: edit that draft.",
        "zh": "该模板已有草稿，请编辑该草稿。",
    },
    "already_exists@username": {
        "en": "A user with this username exists already.",
        "zh": "已存在使用此用户名的用户。",
    },
    "checksum_mismatch@Upload-Checksum": {
        "en": "The chunk does not match its Upload-Checksum; it was not stored, send it again.",
        "zh": "数据块与 Upload-Checksum 不符，未被保存，请重新发送。",
    },
    "evidence_lost@sha256": {
        "en": "The bytes of this evidence file are lost; it is listed as missing until a"
        " tablet that holds it uploads it again.",
        "zh": "此证据文件的内容已丢失；在持有它的平板重新上传之前，它被列为缺失。",
    },
    "file_too_large@Content-Length": {
        "en": "The chunk goes past the Upload-Length declared for the upload.",
        "zh": "数据块超出了该上传声明的 Upload-Length。",
    },
    "file_too_large@Upload-Length": {
        "en": "The file is larger than the limit of {limit} bytes per file.",
        "zh": "文件超过单个文件 {limit} 字节的上限。",
    },
    "hash_mismatch@Upload-Metadata.sha256": {
        "en": "The file's SHA-256 is not the one announced in Upload-Metadata; the upload is"
        " discarded.",
        "zh": "文件的 SHA-256 与 Upload-Metadata 中声明的不一致，此次上传已丢弃。",
    },
    "inspection_closed@inspection_id": {
        "en": "The inspection is closed: it takes no more evidence.",
        "zh": "该检查已关闭，不再接收证据。",
    },
    "inspection_quota_exceeded@Upload-Length": {
        "en": "The inspection holds {used} bytes of evidence; this file would pass its limit"
        " of {limit} bytes.",
        "zh": "该检查已有 {used} 字节的证据，此文件将使其超过 {limit} 字节的上限。",
    },
    "invalid_input@If-Match": {
        "en": "If-Match must be a record revision number.",
        "zh": "If-Match 必须是记录的修订号。",
    },
    "invalid_input@Upload-Checksum": {
        "en": "Upload-Checksum names an algorithm the server does not support, or its digest"
        " has the wrong length.",
        "zh": "Upload-Checksum 使用了不支持的算法，或摘要长度不对。",
    },
    "invalid_input@Upload-Length": {
        "en": "An upload has at least one byte.",
        "zh": "上传至少须有一个字节。",
    },
    "invalid_input@Upload-Metadata.captured_at": {
        "en": "captured_at must be an ISO 8601 time.",
        "zh": "captured_at 必须是 ISO 8601 格式的时间。",
    },
    "invalid_input@Upload-Metadata.filename": {
        "en": "filename has at most 255 characters.",
        "zh": "filename 最多 255 个字符。",
    },
    "invalid_input@Upload-Metadata.inspection_id": {
        "en": "inspection_id is required.",
        "zh": "必须提供 inspection_id。",
    },
    "invalid_input@Upload-Metadata.latitude": {
        "en": "latitude must be decimal degrees within ±90, and goes with longitude.",
        "zh": "latitude 须为 ±90 以内的十进制度数，且须与 longitude 一同提供。",
    },
    "invalid_input@Upload-Metadata.longitude": {
        "en": "longitude must be decimal degrees within ±180.",
        "zh": "longitude 须为 ±180 以内的十进制度数。",
    },
    "invalid_input@Upload-Metadata.sha256": {
        "en": "sha256 (the file's SHA-256, 64 hex digits) is required.",
        "zh": "必须提供 sha256（文件的 SHA-256，64 位十六进制数字）。",
    },
    "invalid_input@authority_id": {
        "en": "There is no such authority.",
        "zh": "不存在该监管机构。",
    },
    "invalid_input@body": {
        "en": "The request needs a body.",
        "zh": "请求须包含请求体。",
    },
    "invalid_input@changelog": {
        "en": "A publication needs a changelog.",
        "zh": "发布版本须填写变更说明。",
    },
    "invalid_input@classification": {
        "en": "The classification is missing or unchanged: classify the finding (reclassify)"
        " before accepting it, with a new classification.",
        "zh": "缺陷分级缺失或未改变：接受前须先对缺陷分级（重新分级），并给出新的分级。",
    },
    "invalid_input@comment": {
        "en": "Say what the inspector should fix.",
        "zh": "请说明检查员需要修改的内容。",
    },
    "invalid_input@content.key": {
        "en": "The content is for another template.",
        "zh": "该内容属于另一个模板。",
    },
    "invalid_input@content.stage_type": {
        "en": "The content is for another stage type than the template's.",
        "zh": "该内容的工序类型与模板不一致。",
    },
    "invalid_input@cursor": {
        "en": "The cursor is not one this server made: pull again from no cursor.",
        "zh": "该游标不是本服务器生成的，请不带游标重新拉取。",
    },
    "invalid_input@decision": {
        "en": "Unknown decision: accept, return, reclassify or merge.",
        "zh": "未知的决定：应为接受、退回、重新分级或合并。",
    },
    "invalid_input@device.id": {
        "en": "This user has no such device.",
        "zh": "该用户没有这台设备。",
    },
    "invalid_input@device.name": {
        "en": "A new device needs a name.",
        "zh": "新设备须有名称。",
    },
    "invalid_input@disabled": {
        "en": "You cannot disable your own account, nor the last active administrator.",
        "zh": "不能停用自己的账户，也不能停用最后一个在用的管理员。",
    },
    "invalid_input@finding_id": {
        "en": "Only an accepted finding is rectified.",
        "zh": "只有已接受的缺陷才需要整改。",
    },
    "invalid_input@outcome": {
        "en": "There is no response to assess yet, or the rectification is accepted already.",
        "zh": "尚无可评估的整改回复，或整改已被接受。",
    },
    "invalid_input@submitted_by": {
        "en": "Say who at the company gave the response.",
        "zh": "请注明企业方提交整改回复的人员。",
    },
    "invalid_input@root_cause": {
        "en": "The root cause is required.",
        "zh": "必须填写根本原因。",
    },
    "invalid_input@actions": {
        "en": "The corrective and preventive actions are required.",
        "zh": "必须填写纠正和预防措施。",
    },
    "invalid_input@evidence_hashes": {
        "en": "Each evidence file is named by its SHA-256 (64 lowercase hex digits) and"
        " must be uploaded first (tus, purpose=rectification).",
        "zh": "每个证据文件以其 SHA-256（64 位小写十六进制）标识，且须先上传"
        "（tus，purpose=rectification）。",
    },
    "invalid_input@from": {
        "en": "There is no SQLite database at that path.",
        "zh": "该路径下没有 SQLite 数据库。",
    },
    "invalid_input@into": {
        "en": "Merge into another live finding of the same inspection.",
        "zh": "只能合并到同一检查中另一条有效的缺陷。",
    },
    "invalid_input@limit": {
        "en": "limit is 1 to 500.",
        "zh": "limit 须在 1 到 500 之间。",
    },
    "invalid_input@link_ids": {
        "en": "An inspection covers at least one link of the site's chain.",
        "zh": "一次检查至少须覆盖该场地所在链条的一个环节。",
    },
    "invalid_input@links": {
        "en": "A chain needs at least one link, each with its own id.",
        "zh": "链条至少须有一个环节，且各环节 id 不能重复。",
    },
    "invalid_input@offset": {
        "en": "offset is 0 or more.",
        "zh": "offset 须大于或等于 0。",
    },
    "invalid_input@password": {
        "en": "A password needs at least 8 characters.",
        "zh": "密码至少须有 8 个字符。",
    },
    "invalid_input@planned_end": {
        "en": "planned_end is before planned_start.",
        "zh": "计划结束日期早于计划开始日期。",
    },
    "invalid_input@reason": {
        "en": "Give a reason.",
        "zh": "请填写理由。",
    },
    "invalid_input@role": {
        "en": "You cannot take away your own admin role, nor the last active administrator's.",
        "zh": "不能取消自己的管理员角色，也不能取消最后一个在用管理员的角色。",
    },
    "invalid_input@to": {
        "en": "The target database is not empty: copy only into a new database.",
        "zh": "目标数据库不为空，只能复制到新数据库中。",
    },
    "invalid_input@user_id": {
        "en": "Only an active inspector of an authority taking part in the inspection can be"
        " assigned.",
        "zh": "只能指派参与该检查的机构中在用的检查员。",
    },
    "invalid_input@value": {
        "en": "The value does not fit the field: give one of the kept values or a merged one"
        " of the field's type.",
        "zh": "该值与字段不符：请选择一个保留的值，或给出与字段类型相符的合并值。",
    },
    "reauthentication_failed@password": {
        "en": "That is not your password: a signature needs the signer's own password.",
        "zh": "密码不正确：签署须输入签署人本人的密码。",
    },
    "invalid_transition@classification": {
        "en": "The classification is in an open conflict: resolve the conflict instead.",
        "zh": "缺陷分级处于未解决的冲突中，请改为裁定该冲突。",
    },
    "invalid_transition@conclusion": {
        "en": "The inspection is concluded at fieldwork done or under review, once every"
        " finding is decided and no conflict is open.",
        "zh": "检查结论须在“现场检查完成”或“审核中”阶段，且所有缺陷均已决定、无未解决冲突时确定。",
    },
    "invalid_transition@conflict_id": {
        "en": "This conflict is already resolved, or its inspection is closed.",
        "zh": "该冲突已裁定，或其所属检查已关闭。",
    },
    "invalid_transition@decision": {
        "en": "The finding cannot take this decision now: it is decided already, or has open"
        " conflicts to resolve first.",
        "zh": "该缺陷目前不能作此决定：已有决定，或须先裁定其未解决的冲突。",
    },
    "invalid_transition@finding_id": {
        "en": "The inspection is not in review: findings are decided once fieldwork is done.",
        "zh": "该检查尚未进入审核：现场检查完成后才能对缺陷作出决定。",
    },
    "invalid_transition@link_ids": {
        "en": "A stage type of these links has no published checklist: publish one first.",
        "zh": "这些环节中有工序类型尚无已发布的检查表，请先发布。",
    },
    "invalid_transition@to": {
        "en": "The inspection cannot go to that status now (to close it, every finding must be"
        " decided and no conflict open).",
        "zh": "该检查目前不能转到该状态（关闭前须对所有缺陷作出决定，且无未解决的冲突）。",
    },
    "not_found@inspection_id": {
        "en": "There is no such inspection, or you may not see it.",
        "zh": "不存在该检查，或您无权查看。",
    },
    "offset_mismatch@Upload-Offset": {
        "en": "The upload is at another offset (or complete): ask its offset (HEAD) and send"
        " from there.",
        "zh": "上传的当前偏移量与此不符（或已完成）：请先查询偏移量（HEAD），再从该处继续发送。",
    },
    "unsupported_file_type@body": {
        "en": "The file is none of JPEG, PNG, HEIC/HEIF, PDF or MP4 (judged by its bytes, not"
        " its name); the upload is discarded.",
        "zh": "文件不是 JPEG、PNG、HEIC/HEIF、PDF 或 MP4（按文件内容而非文件名判断），"
        "此次上传已丢弃。",
    },
}
