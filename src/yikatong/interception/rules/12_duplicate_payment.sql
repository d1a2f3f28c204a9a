-- code: DUPLICATE_PAYMENT
-- name: 同一项目重复申领
-- severity: 高
-- items: all
-- datasets: other_payments
-- explanation: 同一人同一补贴项目、所属期有重叠的补贴已经由其他系统（省级平台、行业系统等）发放，
--   或在本平台还有另一笔所属期重叠的有效申请（办理中或已通过；两笔中后提交的一笔被标记）。
--   同一期间同一补贴只能领取一次。经办部门应核对两笔的发放记录，确属重复的否决本笔申请，已发的追回。
WITH paid_elsewhere AS (
  SELECT a.application_id,
         o.system || ' 已于 ' || strftime(o.paid_on, '%Y-%m-%d') || ' 发放同一项目所属期 '
           || strftime(o.period_start, '%Y-%m-%d') || ' 至 ' || strftime(o.period_end, '%Y-%m-%d')
           || ' 的补贴 ' || format('{:,.2f}', o.amount_fen / 100) || ' 元，本申请所属期 ' || a.period AS evidence,
         'paid:' || o.system || ':' || CAST(o.paid_on AS VARCHAR) || ':' || CAST(o.period_start AS VARCHAR) AS fact_key
  FROM applications a
  JOIN persons p ON p.person_id = a.person_id
  JOIN other_payments o ON o.id_hash = p.id_hash AND o.item_code = a.item_code
  WHERE o.period_start <= a.period_end
    AND o.period_end >= a.period_start
), claimed_twice AS (
  -- the later application of two overlapping ones for the same person and item is the duplicate
  SELECT later.application_id,
         '同一人同一项目已有所属期重叠的申请 ' || earlier.number || '（所属期 ' || earlier.period
           || '），本申请所属期 ' || later.period AS evidence,
         'application:' || earlier.application_id AS fact_key
  FROM applications later
  JOIN applications earlier ON earlier.person_id = later.person_id AND earlier.item_code = later.item_code
  WHERE earlier.application_id < later.application_id
    AND earlier.period_start <= later.period_end
    AND earlier.period_end >= later.period_start
)
SELECT application_id, evidence, fact_key FROM paid_elsewhere
UNION ALL
SELECT application_id, evidence, fact_key FROM claimed_twice
