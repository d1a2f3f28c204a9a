-- code: AGE_OUT_OF_RANGE
-- name: 年龄不符合项目条件
-- severity: 中
-- items: all
-- datasets: none
-- explanation: 按身份证号码中的出生日期计算，申请人在所属期开始时的周岁年龄低于项目的最低年龄或高于最高年龄
--   （如高龄津贴要求年满80周岁）。可能是身份证号码录入错误或不符合条件仍申领。经办部门应核对身份证件，
--   年龄不符的否决申请。
WITH ages AS (
  SELECT a.application_id, a.period_start, p.birth_date, i.name AS item_name, i.min_age, i.max_age,
         -- whole years: the birthday of this year counts once it is reached
         year(a.period_start) - year(p.birth_date)
           - CASE WHEN month(a.period_start) * 100 + day(a.period_start)
                       < month(p.birth_date) * 100 + day(p.birth_date) THEN 1 ELSE 0 END AS age
  FROM applications a
  JOIN items i ON i.item_code = a.item_code
  JOIN persons p ON p.person_id = a.person_id
  WHERE i.min_age IS NOT NULL OR i.max_age IS NOT NULL
)
SELECT application_id,
       '出生日期 ' || strftime(birth_date, '%Y-%m-%d') || '，所属期开始时（' || strftime(period_start, '%Y-%m-%d')
         || '）' || age || ' 周岁，' || item_name || '要求'
         || CASE WHEN min_age IS NOT NULL AND max_age IS NOT NULL THEN min_age || ' 至 ' || max_age || ' 周岁'
                 WHEN min_age IS NOT NULL THEN '年满 ' || min_age || ' 周岁'
                 ELSE '不超过 ' || max_age || ' 周岁' END AS evidence,
       CAST(birth_date AS VARCHAR) AS fact_key
FROM ages
WHERE age < min_age OR age > max_age
