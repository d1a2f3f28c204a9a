-- code: CARD_HOLDER_MISMATCH
-- name: 社保卡持卡人与申请人不符
-- severity: 高
-- items: all
-- datasets: card_registry
-- explanation: 人社部门社保卡状态数据中，申请人名下这张卡（以最新一条记录为准）登记的持卡人是另一个人，
--   而平台上没有申请人由该人代管代持、且在所属期内有效的登记。补贴可能被发到他人手中（冒领、截留）。
--   经办部门应核实卡的实际持有人，确需他人代管的补办代管代持审批手续，否则更换为本人的卡。
WITH latest_registry AS (
  -- a card's status and holder are those of its latest status change
  SELECT card_number, id_hash, id_masked, changed_on
  FROM card_registry
  QUALIFY row_number() OVER (
    PARTITION BY card_number
    ORDER BY changed_on DESC, snapshot_id DESC,
             CASE status WHEN '注销' THEN 4 WHEN '冻结' THEN 3 WHEN '挂失' THEN 2 ELSE 1 END DESC,
             id_hash) = 1  -- the last key only makes a full tie come out the same every run
), held_by_another AS (
  SELECT a.application_id, a.person_id, a.period, a.period_start, a.period_end, p.id_masked AS applicant_masked,
         left(c.card_number, 3) || '****' || right(c.card_number, 4) AS card_masked,
         r.id_hash AS holder_hash, r.id_masked AS holder_masked, r.changed_on, c.card_number
  FROM applications a
  JOIN persons p ON p.person_id = a.person_id
  JOIN cards c ON c.person_id = a.person_id
  JOIN latest_registry r ON r.card_number = c.card_number
  WHERE r.id_hash <> p.id_hash
)
SELECT m.application_id,
       '社会保障卡 ' || m.card_masked || ' 登记的持卡人为 ' || m.holder_masked || '（' || strftime(m.changed_on, '%Y-%m-%d')
         || ' 记录），不是申请人 ' || m.applicant_masked || '，所属期 ' || m.period || ' 内无该人代管代持的登记' AS evidence,
       m.card_number || ':' || m.holder_hash AS fact_key
FROM held_by_another m
LEFT JOIN proxy_holdings h
  ON h.person_id = m.person_id
 AND h.holder_id_hash = m.holder_hash
 AND h.valid_from <= m.period_end
 AND (h.valid_until IS NULL OR h.valid_until >= m.period_start)
WHERE h.person_id IS NULL
