-- code: DECEASED
-- name: 死亡后仍申领
-- severity: 高
-- items: all
-- datasets: deaths
-- explanation: 申请人在补贴所属期结束之前已经死亡（死亡登记来自公安户籍注销、医学死亡证明或火化记录）。
--   死亡当期及以后的补贴不应再发放；死亡前的部分须由经办部门核实后另行处理。
SELECT a.application_id,
       '死亡日期 ' || strftime(d.death_date, '%Y-%m-%d')
         || COALESCE('（' || NULLIF(d.source, '') || '）', '')
         || '，所属期 ' || a.period AS evidence,
       CAST(d.death_date AS VARCHAR) AS fact_key
FROM applications a
JOIN persons p ON p.person_id = a.person_id
JOIN deaths d ON d.id_hash = p.id_hash
WHERE d.death_date <= a.period_end
