-- code: CARD_NOT_ACTIVE
-- name: 没有状态正常的社会保障卡
-- severity: 中
-- items: all
-- datasets: card_registry
-- explanation: 申请人没有状态正常的社会保障卡：未办卡，或名下的卡都已挂失、冻结或注销。卡的状态以人社部门
--   社保卡状态数据中最新的一条为准（同一天有多条时，以后报送的、再按注销、冻结、挂失、正常的顺序取），
--   没有报送的卡以平台登记的状态为准。补贴发到状态异常的卡上会退回或被他人支取。
--   经办部门应通知申请人补办、解挂或激活社会保障卡后再发放。
WITH latest_registry AS (
  -- a card's status is its latest status change
  SELECT card_number, status, changed_on
  FROM card_registry
  QUALIFY row_number() OVER (
    PARTITION BY card_number
    ORDER BY changed_on DESC, snapshot_id DESC,
             CASE status WHEN '注销' THEN 4 WHEN '冻结' THEN 3 WHEN '挂失' THEN 2 ELSE 1 END DESC,
             id_hash) = 1  -- the last key only makes a full tie come out the same every run
), card_status AS (
  SELECT c.person_id, c.card_number, COALESCE(r.status, c.status) AS status, r.changed_on
  FROM cards c
  LEFT JOIN latest_registry r ON r.card_number = c.card_number
), with_active_card AS (
  SELECT DISTINCT person_id FROM card_status WHERE status = '正常'
), no_active_card AS (
  SELECT a.application_id, a.person_id
  FROM applications a
  LEFT JOIN with_active_card w ON w.person_id = a.person_id
  WHERE w.person_id IS NULL
), their_cards AS (
  SELECT person_id,
         list(left(card_number, 3) || '****' || right(card_number, 4) || '（' || status
              || COALESCE('，' || strftime(changed_on, '%Y-%m-%d') || ' 变更', '') || '）' ORDER BY card_number) AS listed,
         string_agg(card_number || ':' || status, ',' ORDER BY card_number) AS cards
  FROM card_status
  WHERE person_id IN (SELECT person_id FROM no_active_card)
  GROUP BY person_id
)
SELECT w.application_id,
       CASE WHEN k.person_id IS NULL THEN '未登记社会保障卡'
            ELSE '没有状态正常的社会保障卡：' || array_to_string(k.listed, '、') END AS evidence,
       COALESCE(k.cards, 'none') AS fact_key
FROM no_active_card w
LEFT JOIN their_cards k ON k.person_id = w.person_id
