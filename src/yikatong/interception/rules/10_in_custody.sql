-- code: IN_CUSTODY
-- name: 服刑在押期间申领
-- severity: 高
-- items: basis:人
-- datasets: prisoners
-- explanation: 司法部门的数据显示，申请人在所属期内处于服刑在押状态。在押期间由监所保障基本生活，
--   按人发放的生活类补贴一般应暂停。经办部门应核实收押和释放日期，在押期间的补贴停发，已发的追回。
SELECT a.application_id,
       '服刑在押：' || strftime(c.custody_from, '%Y-%m-%d') || ' 收押，'
         || COALESCE(strftime(c.custody_to, '%Y-%m-%d') || ' 释放', '尚未释放')
         || '，所属期 ' || a.period AS evidence,
       CAST(c.custody_from AS VARCHAR) AS fact_key
FROM applications a
JOIN persons p ON p.person_id = a.person_id
JOIN prisoners c ON c.id_hash = p.id_hash
WHERE c.custody_from <= a.period_end
  AND (c.custody_to IS NULL OR c.custody_to >= a.period_start)
