-- code: SHARED_ACCOUNT
-- name: 多户共用同一银行账户
-- severity: 高
-- items: all
-- datasets: none
-- explanation: 申请人社会保障卡的金融账户同时登记在另一户（或未登记户的其他人员）的社会保障卡上，
--   共用该账户的每个人的申请都被标记。补贴应直达本人账户，多户共用一个账户常见于冒领、截留或代领。
--   经办部门应核实账户实际归属，请当事人到银行核对，不属于本人的账户应更换。
--   参数：允许同一账户登记在其他户多少人的卡上（默认0，即有一人即标记）。
-- param: max_other_people = 0  同一账户允许登记的其他户人数
WITH reused_accounts AS (
  -- accounts on more than one card: the only ones that can be shared
  SELECT account_hash FROM cards WHERE account_hash IS NOT NULL GROUP BY account_hash HAVING count(*) > 1
), holders AS (
  SELECT c.account_hash, c.account_masked, p.person_id,
         COALESCE(p.household_id, -p.person_id) AS household_key,  -- no household: a household of one
         CASE WHEN length(p.name) <= 1 THEN p.name
              WHEN length(p.name) = 2 THEN left(p.name, 1) || '*'
              ELSE left(p.name, 1) || repeat('*', length(p.name) - 2) || right(p.name, 1) END AS name_masked,
         p.id_masked
  FROM cards c
  JOIN reused_accounts USING (account_hash)
  JOIN persons p ON p.person_id = c.person_id
), others_per_person AS (
  SELECT me.person_id, me.account_masked, me.account_hash,
         count(DISTINCT other.person_id) AS others,
         list(DISTINCT other.name_masked || '（' || other.id_masked || '）') AS listed
  FROM holders me
  JOIN holders other ON other.account_hash = me.account_hash
  WHERE other.household_key <> me.household_key
  GROUP BY me.person_id, me.account_masked, me.account_hash
)
SELECT a.application_id,
       '银行账户 ' || o.account_masked || ' 同时登记在其他户 ' || o.others || ' 人的社会保障卡上：'
         || array_to_string(list_sort(o.listed)[1:5], '、') || CASE WHEN o.others > 5 THEN ' 等' ELSE '' END AS evidence,
       o.account_hash AS fact_key
FROM applications a
JOIN others_per_person o ON o.person_id = a.person_id
WHERE o.others > $max_other_people
